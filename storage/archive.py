"""Client for the Orthanc archive: REST, `/tools/find`, `/changes`, STOW/QIDO/WADO-RS.

One typed entry point for everything the platform asks of the archive. HTTP
failures become a few clear exceptions; retrying is the callers' business
(Prefect tasks), not this module's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ijson
import requests
import urllib3
from dicomweb_client.api import DICOMwebClient

from config.settings import Settings
from core.increments import ArchivedSeries, plan_glimpse, plan_series
from core.records import ArchivedStudy
from core.tags import keep_ingest_tags

JsonDict = dict[str, Any]


class ArchiveError(Exception):
    """Base of every failure talking to the archive.

    The message carries the details (Orthanc's own words, the archive's address) for
    logs and operators; `public_message` says what happened without them, for browsers.
    """

    public_message = "the archive could not do this"


class ArchiveUnavailable(ArchiveError):
    """The archive did not answer (down, unreachable, timed out, or a server error)."""

    public_message = "the archive is unavailable; try again in a moment"


class ArchiveTimeout(ArchiveUnavailable):
    """The archive accepted the connection but did not answer in time."""

    public_message = "the archive did not answer in time"


class ArchiveUnauthorized(ArchiveError):
    """The archive refused the configured credentials."""

    public_message = "the archive refused the platform's credentials"


class ArchiveNotFound(ArchiveError):
    """The resource does not exist (any more) in the archive."""

    public_message = "not found in the archive"


class ArchiveRejected(ArchiveError):
    """The archive understood the request and refused it; the message is Orthanc's."""

    public_message = "the archive refused it"


@dataclass(frozen=True)
class Change:
    seq: int
    change_type: str
    resource_type: str
    resource_id: str
    date: str


@dataclass(frozen=True)
class ChangesPage:
    changes: list[Change]
    last: int
    done: bool


@dataclass(frozen=True)
class StoreResult:
    """Outcome of storing one Part 10 file: `status` is Orthanc's (Success, AlreadyStored)."""

    instance_id: str
    study_id: str
    status: str


class ArchiveClient:
    """Talks to one Orthanc over HTTP with a pooled session and basic auth."""

    def __init__(
        self, url: str, user: str, password: str, *, timeout: float = 30.0, pool_size: int = 10
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = (user, password)
        # The archive is reached directly: no proxy or netrc lookups from the environment
        # (they also cost a few file-system calls on every request).
        self.session.trust_env = False
        if pool_size != 10:
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool_size)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        # The viewer's relay goes through urllib3 itself: requests' own layer costs more CPU
        # per frame than the portal's checks of the request.
        self.relay_pool = urllib3.PoolManager(maxsize=pool_size, retries=False)
        self.relay_auth = urllib3.make_headers(basic_auth=f"{user}:{password}")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, timeout: float = 30.0, pool_size: int = 10
    ) -> ArchiveClient:
        return cls(
            settings.orthanc_url,
            settings.orthanc_user,
            settings.orthanc_password,
            timeout=timeout,
            pool_size=pool_size,
        )

    @classmethod
    def viewer_from_settings(
        cls, settings: Any, *, timeout: float = 30.0, pool_size: int = 10
    ) -> ArchiveClient:
        """The viewer's client: its own account, which Orthanc limits to GET /dicom-web/."""
        return cls(
            settings.orthanc_url,
            settings.orthanc_viewer_user,
            settings.orthanc_viewer_password,
            timeout=timeout,
            pool_size=pool_size,
        )

    def close(self) -> None:
        self.session.close()
        self.relay_pool.clear()

    def __enter__(self) -> ArchiveClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plain REST -------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request to `path` (relative to the archive) and map failures."""
        kwargs.setdefault("timeout", self.timeout)
        with self.translate_errors():
            response = self.session.request(method, f"{self.url}{path}", **kwargs)
            response.raise_for_status()
        return response

    def get_json(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    def post_json(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body).json()

    def get_system(self) -> JsonDict:
        """Orthanc's `/system`: version, AE title, ports; the cheapest health check."""
        return self.get_json("/system")

    def get_statistics(self) -> JsonDict:
        return self.get_json("/statistics")

    def find(
        self,
        level: str,
        query: JsonDict,
        *,
        expand: bool = True,
        limit: int | None = None,
        since: int | None = None,
    ) -> list[Any]:
        """`POST /tools/find`: the JSON body sidesteps this Orthanc's undecoded query strings."""
        body: JsonDict = {"Level": level, "Query": query, "Expand": expand}
        if limit is not None:
            body["Limit"] = limit
        if since is not None:
            body["Since"] = since
        return self.post_json("/tools/find", body)

    def find_study_ids(self, study_instance_uid: str) -> list[str]:
        """Orthanc ids of the study with this StudyInstanceUID (none or one)."""
        return self.find("Study", {"StudyInstanceUID": study_instance_uid}, expand=False)

    def list_study_ids(self) -> list[str]:
        return self.get_json("/studies")

    def get_study(self, study_id: str) -> JsonDict:
        return self.get_json(f"/studies/{study_id}")

    def get_study_instances(self, study_id: str) -> list[JsonDict]:
        return self.get_json(f"/studies/{study_id}/instances")

    def list_study_series(self, study_id: str) -> list[ArchivedSeries]:
        """The study's series with their sizes and whether each is complete (stable)."""
        return [
            ArchivedSeries(
                orthanc_id=series["ID"],
                series_instance_uid=series.get("MainDicomTags", {}).get("SeriesInstanceUID", ""),
                instance_count=len(series.get("Instances", ())),
                is_stable=series.get("IsStable", True),
                first_instance_id=(series.get("Instances") or [""])[0],
            )
            for series in self.get_json(f"/studies/{study_id}/series")
        ]

    def get_archived_study(
        self,
        study_id: str,
        recorded_series: Mapping[str, int] | None = None,
        *,
        wait_for_stable: bool = False,
        complete_series_only: bool = False,
    ) -> ArchivedStudy:
        """A study's summary and the tags of the series ingestion has not recorded yet
        (`recorded_series`: UID -> instances, see core/increments.py), series by series,
        one call each. `wait_for_stable`: a study still arriving is summarised, not read;
        `complete_series_only`: of a study still arriving, only the complete series are
        read (the pipeline's way: each is read once), else all of it as it is now.
        """
        summary = self.get_study(study_id)
        is_stable = summary.get("IsStable", True)
        study_uid = summary.get("MainDicomTags", {}).get("StudyInstanceUID", "")
        if wait_for_stable and not is_stable:
            return ArchivedStudy(study_id, summary["LastUpdate"], is_stable, instances=[])
        plan = plan_series(
            self.list_study_series(study_id),
            recorded_series,
            study_stable=is_stable or not complete_series_only,
        )
        shared: dict[str, str] = {}
        instances = [
            keep_ingest_tags(tags, shared)
            for series in plan.read
            for tags in self.stream_instances_tags(f"/series/{series.orthanc_id}")
        ]
        return ArchivedStudy(
            orthanc_id=study_id,
            last_update=summary["LastUpdate"],
            is_stable=is_stable,
            instances=instances,
            other_patient_ids=self.find_other_patient_ids(study_id, study_uid),
            kept_series=plan.kept,
            waiting_instances=plan.waiting_instances,
        )

    def get_study_glimpse(self, study_id: str) -> ArchivedStudy | None:
        """A study still arriving as one instance of a big complete series, the others
        counted (see core/increments.py `plan_glimpse`); None when there is none to take."""
        summary = self.get_study(study_id)
        if summary.get("IsStable", True):
            return None
        series = self.list_study_series(study_id)
        chosen = plan_glimpse(series, study_stable=False)
        if chosen is None:
            return None
        tags = self.get_json(f"/instances/{chosen.first_instance_id}/tags", short="")
        study_uid = summary.get("MainDicomTags", {}).get("StudyInstanceUID", "")
        return ArchivedStudy(
            orthanc_id=study_id,
            last_update=summary["LastUpdate"],
            is_stable=False,
            instances=[keep_ingest_tags(tags, {})],
            other_patient_ids=self.find_other_patient_ids(study_id, study_uid),
            waiting_instances=sum(s.instance_count for s in series) - 1,
        )

    def find_other_patient_ids(self, study_id: str, study_uid: str) -> list[str]:
        """The Patient IDs of other archive studies sharing this StudyInstanceUID (Orthanc
        files one study UID per patient separately)."""
        if not study_uid:
            return []
        return [
            other["PatientMainDicomTags"].get("PatientID", "")
            for other in self.find("Study", {"StudyInstanceUID": study_uid})
            if other["ID"] != study_id
        ]

    def get_study_instances_tags(self, study_id: str) -> list[JsonDict]:
        """Every instance's tags (short format, bulk values left out) in one call."""
        return list(self.stream_instances_tags(f"/studies/{study_id}"))

    def stream_instances_tags(self, resource: str) -> Iterator[JsonDict]:
        """The tags of each instance of `resource` (`/studies/ID`, `/series/ID`), short
        format, bulk values left out, one instance at a time as Orthanc's answer arrives:
        never the whole JSON text (tens of MB for a 3,000-instance study) nor every
        instance's full tags at once."""
        # Uncompressed: Orthanc builds the whole answer before sending it, and gzipping tens
        # of MB for a nearby client costs both sides more CPU than the bytes cost.
        response = self.request(
            "GET",
            f"{resource}/instances-tags",
            params={"short": ""},
            headers={"Accept-Encoding": "identity"},
            stream=True,
        )
        with response:
            response.raw.decode_content = True  # gzip, should Orthanc compress it anyway
            try:
                for _, tags in ijson.kvitems(response.raw, "", use_float=True):
                    yield tags
            except urllib3.exceptions.HTTPError as error:
                raise ArchiveUnavailable(
                    f"the archive at {self.url} broke off its answer ({error})"
                ) from error

    def render_series_preview(self, series_uid: str, *, height: int = 128) -> bytes:
        """A PNG of the series' middle instance (first frame), scaled to `height` pixels."""
        matches = self.find("Series", {"SeriesInstanceUID": series_uid}, expand=True, limit=1)
        if not matches or not matches[0].get("Instances"):
            raise ArchiveNotFound(f"no series {series_uid} in the archive")
        instances = matches[0]["Instances"]
        middle = instances[len(instances) // 2]
        return self.request(
            "GET", f"/instances/{middle}/rendered", params={"height": height}
        ).content

    def get_instance_tags(self, instance_id: str) -> JsonDict:
        """All tags of one instance, `simplify`-ed to keyword -> value."""
        return self.get_json(f"/instances/{instance_id}/simplified-tags")

    def get_instance_file(self, instance_id: str, *, compressed: bool = True) -> bytes:
        """The stored Part 10 file. Orthanc gzips it for a client that accepts that: on
        loopback, `compressed=False` is about 9x faster (its zlib is the bottleneck)."""
        headers = {} if compressed else {"Accept-Encoding": "identity"}
        return self.request("GET", f"/instances/{instance_id}/file", headers=headers).content

    def get_instance_md5(self, instance_id: str) -> str:
        """MD5 of the stored file, as Orthanc recorded it when it stored the instance."""
        return self.request("GET", f"/instances/{instance_id}/attachments/dicom/md5").text.strip()

    def delete_study(self, study_id: str) -> None:
        self.request("DELETE", f"/studies/{study_id}")

    def get_changes(self, since: int = 0, limit: int = 100) -> ChangesPage:
        """One page of the persistent `/changes` feed after sequence number `since`."""
        body = self.get_json("/changes", since=since, limit=limit)
        changes = [
            Change(
                seq=item["Seq"],
                change_type=item["ChangeType"],
                resource_type=item["ResourceType"],
                resource_id=item["ID"],
                date=item["Date"],
            )
            for item in body["Changes"]
        ]
        return ChangesPage(changes=changes, last=body["Last"], done=body["Done"])

    def get_last_change(self) -> int:
        return self.get_json("/changes", last="")["Last"]

    def upload_instance(self, part10: bytes) -> StoreResult:
        """`POST /instances` with one Part 10 file; an instance already there is not an error."""
        body = self.request(
            "POST", "/instances", data=part10, headers={"Content-Type": "application/dicom"}
        ).json()
        return StoreResult(
            instance_id=body["ID"], study_id=body["ParentStudy"], status=body["Status"]
        )

    # -- DICOMweb ---------------------------------------------------------------------

    def store_instances(self, files: Iterable[bytes]) -> JsonDict:
        """STOW-RS a batch of Part 10 files in one multipart request; returns the DICOM JSON.

        Sent as raw files rather than through dicomweb-client, which re-encodes
        datasets and can drop the preamble and file meta Orthanc needs to read them back.
        """
        boundary = uuid.uuid4().hex
        body = bytearray()
        for part in files:
            body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            body += part
            body += b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        response = self.request(
            "POST",
            "/dicom-web/studies",
            data=bytes(body),
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        )
        return response.json()

    def dicomweb(self) -> DICOMwebClient:
        """A dicomweb-client on this archive's `/dicom-web` root, sharing the session."""
        return DICOMwebClient(url=f"{self.url}/dicom-web", session=self.session)

    def search_studies(self, **search_filters: str) -> list[JsonDict]:
        """QIDO-RS studies with exact-match filters (no wildcards: see the design notes)."""
        with self.translate_errors():
            return self.dicomweb().search_for_studies(search_filters=search_filters)

    def get_series_metadata(self, study_uid: str, series_uid: str) -> list[JsonDict]:
        with self.translate_errors():
            return self.dicomweb().retrieve_series_metadata(study_uid, series_uid)

    def get_instance_metadata(self, study_uid: str, series_uid: str, sop_uid: str) -> JsonDict:
        """WADO-RS metadata (DICOM JSON; large values come as BulkDataURIs)."""
        with self.translate_errors():
            return self.dicomweb().retrieve_instance_metadata(study_uid, series_uid, sop_uid)

    def get_frame(self, study_uid: str, series_uid: str, sop_uid: str, frame: int) -> bytes:
        """WADO-RS one frame, uncompressed as stored (explicit media type: see design notes)."""
        with self.translate_errors():
            frames = self.dicomweb().retrieve_instance_frames(
                study_uid,
                series_uid,
                sop_uid,
                frame_numbers=[frame],
                media_types=(("application/octet-stream", "*"),),
            )
        return frames[0]

    # -- errors -----------------------------------------------------------------------

    # -- DICOM modalities (the AEs the DICOM port accepts) -----------------------------

    def list_modality_names(self) -> list[str]:
        """The names of the modalities Orthanc knows."""
        return self.get_json("/modalities")

    def put_modality(self, name: str, definition: JsonDict) -> None:
        self.request("PUT", f"/modalities/{name}", json=definition)

    def delete_modality(self, name: str) -> None:
        self.request("DELETE", f"/modalities/{name}")

    def open_dicomweb(
        self, path: str, query: str, headers: dict[str, str], *, timeout: tuple[float, float]
    ) -> urllib3.BaseHTTPResponse:
        """Start a streamed GET of the DICOMweb resource `path` (relative to /dicom-web/).

        `query` goes out exactly as given (this Orthanc does not decode query strings).
        HTTP error statuses are returned, not raised, so that a proxy can relay them;
        the caller closes the response (a connection read to its end is back in the pool).
        """
        url = f"{self.url}/dicom-web/{path}" + (f"?{query}" if query else "")
        connect, read = timeout
        try:
            return self.relay_pool.request(
                "GET",
                url,
                headers={**headers, **self.relay_auth},
                preload_content=False,
                decode_content=False,
                timeout=urllib3.Timeout(connect=connect, read=read),
            )
        except urllib3.exceptions.ReadTimeoutError as error:
            raise ArchiveTimeout(f"the archive at {self.url} did not answer in time") from error
        except urllib3.exceptions.HTTPError as error:
            raise ArchiveUnavailable(
                f"the archive at {self.url} did not answer ({type(error).__name__}): "
                "is Orthanc running? (start it with `pacs orthanc start`)"
            ) from error

    @contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Turn requests' exceptions into the archive's small set of exceptions."""
        try:
            yield
        except requests.HTTPError as error:
            raise self.classify_response(error.response) from error
        except requests.ReadTimeout as error:
            raise ArchiveTimeout(f"the archive at {self.url} did not answer in time") from error
        except (requests.ConnectionError, requests.Timeout) as error:
            raise ArchiveUnavailable(
                f"the archive at {self.url} did not answer ({type(error).__name__}): "
                "is Orthanc running? (start it with `pacs orthanc start`)"
            ) from error

    def classify_response(self, response: requests.Response) -> ArchiveError:
        status = response.status_code
        where = f"{response.request.method} {response.url}"
        if status == 401 or status == 403:
            return ArchiveUnauthorized(
                f"the archive at {self.url} refused the credentials (HTTP {status}): "
                "check PACS_ORTHANC_USER and PACS_ORTHANC_PASSWORD"
            )
        if status == 404:
            return ArchiveNotFound(f"not found in the archive: {where}")
        if status >= 500:
            return ArchiveUnavailable(f"the archive failed on {where}: HTTP {status}")
        return ArchiveRejected(f"the archive refused {where}: {describe_orthanc_error(response)}")


def describe_orthanc_error(response: requests.Response) -> str:
    """Orthanc's own explanation from its JSON error body, else the status line."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code} {response.reason}"
    if isinstance(body, dict):
        details = body.get("Details") or body.get("Message")
        if details:
            return f"HTTP {response.status_code}: {details}"
    return f"HTTP {response.status_code} {response.reason}"
