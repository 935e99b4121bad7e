"""Orthanc Python plugin: tell the platform when a study has become stable or was deleted,
and, per `NotifyArriving`, when a study starts arriving (its first instance, `instance`) or
one of its series is complete (`series`), so that it shows on the worklist before it is whole;
and hold the viewer's archive account to reading DICOMweb.

Runs inside Orthanc's embedded interpreter, so it uses the standard library
only and does no heavy work: the change callback queues the study's Orthanc
id and returns at once; one background thread posts the notification to the
platform's webhook with bounded retries. A notification that still fails is
only logged: the platform's reconciliation over `/changes` picks the study up.

The portal's DICOMweb proxy signs in with an account of its own
(`PacsPlatform.ViewerUser`); whatever the portal does, Orthanc answers that
account's requests only for GET (HEAD arrives here as GET) under /dicom-web/.
Orthanc has checked the password and resolved dot segments and encoded slashes
before the filter runs; the filter refuses any that would still show.
"""

import base64
import binascii
import contextlib
import json
import queue
import threading
import time
import urllib.error
import urllib.request

import orthanc

ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 0.5
QUEUE_SIZE = 10000

pending: "queue.Queue[tuple[str, str, str] | None]" = queue.Queue(maxsize=QUEUE_SIZE)
# Orthanc's /changes feed does not keep deletions: they are forwarded as they happen.
NOTIFIED = {
    orthanc.ChangeType.STABLE_STUDY: "StableStudy",
    orthanc.ChangeType.DELETED: "Deleted",
}
# NotifyArriving -> the changes forwarded while a study arrives: (change, level) -> name.
NEW_STUDY = {(orthanc.ChangeType.NEW_STUDY, orthanc.ResourceType.STUDY): "NewStudy"}
STABLE_SERIES = {(orthanc.ChangeType.STABLE_SERIES, orthanc.ResourceType.SERIES): "StableSeries"}
ARRIVING = {"instance": {**NEW_STUDY, **STABLE_SERIES}, "series": STABLE_SERIES}
delivering = threading.Event()
arriving: dict = {}  # the ARRIVING entry in force


def read_platform_config() -> dict:
    return json.loads(orthanc.GetConfiguration()).get("PacsPlatform", {})


VIEWER_USER = read_platform_config().get("ViewerUser", "")
VIEWER_ROOT = "/dicom-web/"


def read_basic_user(headers: dict) -> str:
    """The user name of a Basic `Authorization` header ("" when there is none)."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[0]


def is_viewer_request(method, uri: str) -> bool:
    """What the viewer account may do: read DICOMweb resources, by plain paths only."""
    if method != orthanc.HttpMethod.GET or not uri.startswith(VIEWER_ROOT):
        return False
    path = uri[len(VIEWER_ROOT) :]
    segments = path.split("/")
    plain = "" not in segments[:-1] and not {".", ".."} & set(segments)
    return plain and "%" not in path and "\\" not in path


def filter_http_request(uri: str, **request) -> bool:
    if not VIEWER_USER or read_basic_user(request.get("headers", {})) != VIEWER_USER:
        return True
    if is_viewer_request(request.get("method"), uri):
        return True
    orthanc.LogWarning(
        f"pacs: refused {request.get('method')} {uri} for the viewer account "
        f"from {request.get('ip')}"
    )
    return False


def post_notification(url: str, secret: str, change: str, study_id: str) -> None:
    body = json.dumps({"ChangeType": change, "ResourceType": "Study", "ID": study_id})
    request = urllib.request.Request(
        url,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Pacs-Webhook-Secret": secret},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def deliver_notifications(url: str, secret: str) -> None:
    while True:
        item = pending.get()
        if item is None:
            return
        change, level, resource_id = item
        study_id = find_study(level, resource_id)
        if study_id is None:
            continue
        backoff = FIRST_BACKOFF_SECONDS
        for attempt in range(1, ATTEMPTS + 1):
            try:
                post_notification(url, secret, change, study_id)
                break
            except (urllib.error.URLError, OSError) as error:
                if attempt == ATTEMPTS:
                    orthanc.LogWarning(
                        f"pacs: could not notify {url} of {change} study {study_id} "
                        f"after {ATTEMPTS} attempts ({error}); reconciliation will ingest it"
                    )
                else:
                    time.sleep(backoff)
                    backoff *= 2


def find_study(level, resource_id: str):
    """The Orthanc id of the resource's study (None for a series deleted since)."""
    if level == orthanc.ResourceType.STUDY:
        return resource_id
    try:
        return json.loads(orthanc.RestApiGet(f"/series/{resource_id}"))["ParentStudy"]
    except Exception:  # gone since: the study's own notifications follow
        return None


def on_change(change_type, level, resource_id) -> None:
    if change_type == orthanc.ChangeType.ORTHANC_STARTED:
        config = read_platform_config()
        url = config.get("WebhookUrl", "")
        if url:
            thread = threading.Thread(
                target=deliver_notifications,
                args=(url, config.get("WebhookSecret", "")),
                name="pacs-notify",
                daemon=True,
            )
            thread.start()
            arriving.update(ARRIVING.get(config.get("NotifyArriving", ""), {}))
            delivering.set()
    elif delivering.is_set() and (name := notified_name(change_type, level)):
        try:
            pending.put_nowait((name, level, resource_id))
        except queue.Full:
            orthanc.LogWarning(
                f"pacs: notification queue full, {resource_id} left to reconciliation"
            )
    elif change_type == orthanc.ChangeType.ORTHANC_STOPPED and delivering.is_set():
        delivering.clear()
        # When the queue is full the daemon thread simply ends with Orthanc's process.
        with contextlib.suppress(queue.Full):
            pending.put_nowait(None)


def notified_name(change_type, level):
    """The notification's name for this change, or None when it is not forwarded."""
    if change_type in NOTIFIED and level == orthanc.ResourceType.STUDY:
        return NOTIFIED[change_type]
    return arriving.get((change_type, level))


orthanc.RegisterOnChangeCallback(on_change)
orthanc.RegisterIncomingHttpRequestFilter(filter_http_request)
