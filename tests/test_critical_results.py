"""Critical results: the flag at signing, the referrer's page and one-click acknowledgement,
the telephone record, escalation after the time limit (time injected, never slept) to the
on-call contact, admins and a webhook retried until it answers, the audit trail, the SR."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest
from flask import Flask
from sqlalchemy import select

from config.settings import load_settings
from core.critical_results import (
    CriticalCategory,
    CriticalResultError,
    check_communication,
    next_retry_delay,
    parse_category,
)
from core.evidence import EvidenceInstance, StudyHeader
from core.sr import CriticalContent, SignedReport, build_report_sr, encode_part10
from portal import create_app
from portal.extensions import db
from storage.accounts import create_user
from storage.archive import ArchiveClient
from storage.models.accounts import AuditEvent, User
from storage.models.critical_results import CriticalNotification, CriticalResult
from storage.models.reports import Report, ReportDocument
from storage.models.studies import Study
from storage.reports import load_signed_report
from tasks.critical_results import escalate_critical_results
from tests.support.apps import add_users_and_studies, make_study
from tests.support.databases import new_database
from tests.support.reports import (
    dciodvfy_errors,
    fetch_sr,
    ingest,
    read_part10,
    section_texts,
    store_study,
    wait_until_archived,
)
from tests.support.services import make_env
from tests.support.studies import clone_study
from tests.support.users import NOW, PASSWORD, csrf_token_of, sign_in, token_for

STUDY = "1.2.826.0.1.3680043.10.1"  # make_study(0) of the `app` studies
ONCALL = "oncall@example.org"
SECRET = "test-webhook-secret"


# -- rules ------------------------------------------------------------------------------------


def test_categories_are_the_three_of_the_practice_parameter() -> None:
    assert [c.value for c in CriticalCategory] == ["immediate", "urgent", "non_urgent"]
    assert parse_category("urgent") is CriticalCategory.URGENT
    for bad in ("URGENT", "", None, 1, ["immediate"], "immediate "):
        with pytest.raises(CriticalResultError):
            parse_category(bad)


def test_a_telephone_record_names_someone_at_a_past_time_with_read_back_said() -> None:
    now = NOW
    name, at, read_back = check_communication("  Dr  Who,  ED ", now, True, now)
    assert (name, at, read_back) == ("Dr Who, ED", now, True)
    for recipient, when, back in (
        ("", now, True),
        ("x" * 129, now, True),
        ("Dr\x00Evil", now, True),
        ("Dr Who", now.replace(tzinfo=None), True),
        ("Dr Who", now + datetime.timedelta(hours=1), True),
        ("Dr Who", now - datetime.timedelta(days=31), True),
        ("Dr Who", "2026-11-27T12:00:00Z", True),
        ("Dr Who", now, "yes"),
        (None, now, True),
    ):
        with pytest.raises(CriticalResultError):
            check_communication(recipient, when, back, now)


def test_webhook_retries_back_off_to_fifteen_minutes() -> None:
    delays = [next_retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 10, 50)]
    assert delays == [30, 60, 120, 240, 900, 900]


# -- the portal -------------------------------------------------------------------------------


class Webhook:
    """A real HTTP server on loopback answering with the statuses given, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[bytes, dict[str, str]]] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook.received.append((body, dict(self.headers)))
                status = webhook.statuses.pop(0) if webhook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/page"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook([503, 500]) as server:
        yield server


@pytest.fixture
def critical_app(
    tmp_path: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch, webhook: Webhook
) -> Flask:
    """The portal with a user per role, the on-call contact, a webhook, 30 studies; the first
    study referred by referrer@example.org (DICOM name Referrer^Rita)."""
    monkeypatch.setattr("storage.accounts.hash_password", lambda password: password_hash)
    env = make_env(
        tmp_path,
        PACS_CRITICAL_ONCALL=ONCALL.upper(),
        PACS_CRITICAL_WEBHOOK_URL=webhook.url,
        PACS_CRITICAL_WEBHOOK_SECRET=SECRET,
        PACS_CRITICAL_LIMIT_IMMEDIATE="30",
    )
    app = create_app({"PACS_SETTINGS": load_settings(env), "TESTING": True})
    add_users_and_studies(app)
    with app.app_context():
        create_user(db.session, ONCALL, PASSWORD, "radiologist", NOW)
        create_user(db.session, "other-ref@example.org", PASSWORD, "referrer", NOW)
        for email, name in (("referrer@example.org", "Referrer^Rita"),
                            ("other-ref@example.org", "Other^Otto")):  # fmt: skip
            db.session.scalar(select(User).where(User.email == email)).dicom_name = name
        study = db.session.scalar(select(Study).where(Study.study_instance_uid == STUDY))
        study.referring_physician = "REFERRER^RITA"
        db.session.commit()
    return app


def write_and_sign(client, headers: dict[str, str], body: object = None, action="finalize"):
    draft = client.put(
        f"/api/v1/studies/{STUDY}/report",
        json={"findings": "Large left pneumothorax.", "impression": "Tension pneumothorax."},
        headers={**headers, "If-Match": client.get(f"/api/v1/studies/{STUDY}/report",
                                                   headers=headers).headers["ETag"]},
    )  # fmt: skip
    assert draft.status_code == 200, draft.json
    return client.post(
        f"/api/v1/studies/{STUDY}/report/{action}",
        json=body,
        headers={**headers, "If-Match": draft.headers["ETag"]},
    )


def audit_actions(app: Flask, prefix: str = "critical_result") -> list[tuple[str, str]]:
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.startswith(prefix)).order_by(AuditEvent.id)
        )
        return [(e.action, e.outcome) for e in events]


def test_signing_refuses_a_malformed_critical_flag_and_signs_nothing(critical_app: Flask) -> None:
    client = critical_app.test_client()
    headers = token_for(client, "radiologist")
    for body in ({"critical": "bogus"}, [1], {"critical": "immediate", "x": 1}, {"critical": 3}):
        answer = write_and_sign(client, headers, body)
        assert answer.status_code == 422, (body, answer.json)
        assert "critical" in answer.json["error"]
    report = client.get(f"/api/v1/studies/{STUDY}/report", headers=headers).json
    assert report["status"] == "draft" and report["documents"] == []
    with critical_app.app_context():
        assert db.session.scalar(select(CriticalResult)) is None


def test_flag_notify_acknowledge_in_one_click(critical_app: Flask) -> None:
    client = critical_app.test_client()
    signed = write_and_sign(client, token_for(client, "radiologist"), {"critical": "immediate"})
    assert signed.status_code == 201, signed.json
    with critical_app.app_context():
        result = db.session.scalar(select(CriticalResult))
        assert result.category == "immediate" and result.document_sequence == 1
        assert result.due_at - result.flagged_at == datetime.timedelta(minutes=30)  # setting
        result_id = result.id
    referrer = critical_app.test_client()
    sign_in(referrer, "referrer")
    home = referrer.get("/referrals").get_data(as_text=True)
    assert 'id="critical-link"' in home and "critical-waiting" in home  # the badge, at once
    page = referrer.get("/critical-results").get_data(as_text=True)
    assert f'data-result-id="{result_id}"' in page
    assert "Tension pneumothorax." in page and "Immediate (minutes)" in page
    # Another referrer neither sees nor acknowledges it; a radiologist may not acknowledge.
    other = critical_app.test_client()
    assert other.get("/api/v1/critical-results", headers=token_for(other, "other-ref")).json == {
        "items": []
    }
    refused = other.post(
        f"/api/v1/critical-results/{result_id}/acknowledge", headers=token_for(other, "other-ref")
    )
    assert refused.status_code == 404
    refused = other.post(
        f"/api/v1/critical-results/{result_id}/acknowledge",
        headers=token_for(other, "radiologist"),
    )
    assert refused.status_code == 403
    # One click on the page.
    answer = referrer.post(
        f"/critical-results/{result_id}/acknowledge", data={"csrf_token": csrf_token_of(page)}
    )
    assert answer.status_code == 302
    again = referrer.post(
        f"/critical-results/{result_id}/acknowledge", data={"csrf_token": csrf_token_of(page)}
    )
    assert again.status_code == 302
    with critical_app.app_context():
        result = db.session.get(CriticalResult, result_id)
        assert result.acknowledged_by == "referrer@example.org"
        first_ack = result.acknowledged_at
    assert first_ack is not None
    assert "Acknowledged by referrer@example.org" in referrer.get("/critical-results").get_data(
        as_text=True
    )
    assert audit_actions(critical_app) == [
        ("critical_result.flag", "success"),
        ("critical_result.read", "denied"),  # another referrer: not found
        ("critical_result.acknowledge", "denied"),  # a radiologist
        ("critical_result.acknowledge", "success"),
        ("critical_result.acknowledge", "success"),  # "already acknowledged": nothing changed
    ]


def test_a_telephone_record_after_final_is_an_addendum_and_closes_the_loop(
    critical_app: Flask,
) -> None:
    client = critical_app.test_client()
    headers = token_for(client, "radiologist")
    assert write_and_sign(client, headers, {"critical": "urgent"}).status_code == 201
    url = f"/api/v1/studies/{STUDY}/critical-result/communications"
    called = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=3)
    for body in (
        {"recipient": "", "communicated_at": called.isoformat(), "read_back": True},
        {"recipient": "Dr Who", "communicated_at": "2026-11-27T12:00:00", "read_back": True},
        {"recipient": "Dr Who", "communicated_at": "2099-01-01T00:00:00Z", "read_back": True},
        {"recipient": "Dr Who", "communicated_at": called.isoformat()},
        {"recipient": "x" * 200, "communicated_at": called.isoformat(), "read_back": True},
    ):
        assert client.post(url, json=body, headers=headers).status_code in (400, 422), body
    other = token_for(client, "second")  # another radiologist: not theirs to record
    body = {"recipient": "Dr Who (ED)", "communicated_at": called.isoformat(), "read_back": True}
    assert client.post(url, json=body, headers=other).status_code == 403
    assert client.post(url, json=body, headers=token_for(client, "referrer")).status_code == 403
    answer = client.post(url, json=body, headers=headers)
    assert answer.status_code == 201, answer.json
    assert answer.json["acknowledged_by"] == "telephone: Dr Who (ED)"
    assert answer.json["communications"][0]["read_back"] is True
    report = client.get(f"/api/v1/studies/{STUDY}/report", headers=headers).json
    assert [d["kind"] for d in report["documents"]] == ["final", "addendum"]
    assert "Communicated by telephone to Dr Who (ED)" in report["documents"][1]["addendum_text"]
    assert "read-back confirmed" in report["documents"][1]["addendum_text"]
    # The final SR carries the flag; the addendum's SR the flag and the call.
    with critical_app.app_context():
        ids = db.session.scalars(select(ReportDocument.id).order_by(ReportDocument.sequence)).all()
        final, _ = load_signed_report(db.session, ids[0])
        addendum, _ = load_signed_report(db.session, ids[1])
    assert final.critical.flag.startswith("Critical result, Urgent (hours): flagged by")
    assert final.critical.communications == []
    assert len(addendum.critical.communications) == 1
    assert "Dr Who (ED)" in addendum.critical.communications[0]
    assert ("critical_result.communication", "success") in audit_actions(critical_app)


def test_escalation_after_the_limit_reaches_oncall_admins_and_the_webhook_until_it_answers(
    critical_app: Flask, webhook: Webhook
) -> None:
    client = critical_app.test_client()
    assert (
        write_and_sign(client, token_for(client, "radiologist"), {"critical": "immediate"})
    ).status_code == 201
    settings = critical_app.config["PACS_SETTINGS"]
    with critical_app.app_context():
        result = db.session.scalar(select(CriticalResult))
        flagged, result_id = result.flagged_at, result.id
    at = lambda minutes: flagged + datetime.timedelta(minutes=minutes)  # noqa: E731
    run = escalate_critical_results.fn

    assert run(settings, now=at(29)).escalated == []  # within the limit: nothing
    assert webhook.received == []
    first = run(settings, now=at(30))  # the limit: escalated, the webhook fails (503)
    assert first.escalated == [result_id] and first.delivered == 0 and len(first.failed) == 1
    assert run(settings, now=at(30.2)).failed == {}  # not retried before its backoff
    assert len(webhook.received) == 1
    second = run(settings, now=at(30.6))  # retried: 500
    assert second.escalated == [] and len(second.failed) == 1  # escalated once only
    assert run(settings, now=at(31.2)).failed == {}  # backoff doubled to a minute
    third = run(settings, now=at(31.7))
    assert third.delivered == 1 and third.failed == {}
    assert run(settings, now=at(40)).delivered == 0  # delivered once
    assert len(webhook.received) == 3
    body, headers = webhook.received[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-PACS-Signature"] == expected
    payload = json.loads(body)
    assert payload["event"] == "critical_result.escalated"
    assert payload["critical_result_id"] == result_id and payload["category"] == "immediate"
    assert payload["oncall"] == ONCALL and payload["study_instance_uid"] == STUDY
    assert "patient_name" not in payload
    with critical_app.app_context():
        notification = db.session.scalar(select(CriticalNotification))
        assert notification.attempts == 3 and notification.delivered_at is not None
    # In the portal: the on-call contact and admins see it escalated, and may acknowledge.
    for role in ("oncall", "admin"):
        viewer = critical_app.test_client()
        items = viewer.get("/api/v1/critical-results", headers=token_for(viewer, role)).json
        assert [i["id"] for i in items["items"]] == [result_id], role
        assert items["items"][0]["escalated_at"] is not None
    oncall = critical_app.test_client()
    sign_in(oncall, "oncall")
    page = oncall.get("/critical-results").get_data(as_text=True)
    assert "escalated" in page and "critical-waiting" in page
    acknowledged = oncall.post(
        f"/api/v1/critical-results/{result_id}/acknowledge", headers=token_for(oncall, "oncall")
    )
    assert acknowledged.status_code == 200 and acknowledged.json["acknowledged_by"] == ONCALL
    assert audit_actions(critical_app) == [
        ("critical_result.flag", "success"),
        ("critical_result.escalate", "success"),
        ("critical_result.webhook", "failure"),
        ("critical_result.webhook", "failure"),
        ("critical_result.webhook", "success"),
        ("critical_result.acknowledge", "success"),
    ]


def test_an_acknowledged_result_is_never_escalated(critical_app: Flask) -> None:
    client = critical_app.test_client()
    write_and_sign(client, token_for(client, "radiologist"), {"critical": "immediate"})
    with critical_app.app_context():
        result_id = db.session.scalar(select(CriticalResult.id))
    client.post(
        f"/api/v1/critical-results/{result_id}/acknowledge", headers=token_for(client, "referrer")
    )
    settings = critical_app.config["PACS_SETTINGS"]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
    assert escalate_critical_results.fn(settings, now=later).escalated == []


def test_a_preliminary_flag_stands_at_final_and_escalation_without_webhook(
    critical_app: Flask,
) -> None:
    client = critical_app.test_client()
    headers = token_for(client, "radiologist")
    assert write_and_sign(client, headers, {"critical": "urgent"}, "preliminary").status_code == 201
    assert write_and_sign(client, headers, {"critical": "immediate"}).status_code == 201
    with critical_app.app_context():
        results = db.session.scalars(select(CriticalResult)).all()
        assert [(r.category, r.document_sequence) for r in results] == [("urgent", 1)]
        due = results[0].due_at
    settings = replace(critical_app.config["PACS_SETTINGS"], critical_webhook_url="")
    outcome = escalate_critical_results.fn(settings, now=due)
    assert len(outcome.escalated) == 1 and outcome.failed == {}
    with critical_app.app_context():
        assert db.session.scalar(select(CriticalNotification)) is None


# -- the SR -----------------------------------------------------------------------------------


@pytest.mark.requires("dciodvfy")
def test_the_sr_carries_the_flag_and_the_communication_and_is_dciodvfy_clean() -> None:
    datasets = clone_study("CR")
    header = StudyHeader(
        study_instance_uid=datasets[0].StudyInstanceUID,
        patient_name="Doe^Jane",
        patient_id="P1",
        study_date=datasets[0].StudyDate,
        study_time=datasets[0].StudyTime,
    )
    evidence = [
        EvidenceInstance(d.SeriesInstanceUID, d.SOPInstanceUID, d.SOPClassUID) for d in datasets
    ]
    critical = CriticalContent(
        "Critical result, Immediate (minutes): flagged by Nakamura Yuko at 2026-11-27 14:30 UTC.",
        ["Communicated by telephone to Dr Who (ED) at 2026-11-27 14:35 UTC by Nakamura Yuko;"
         " read-back confirmed."],
    )  # fmt: skip
    report = SignedReport(
        kind="final",
        sections={"findings": "Large left pneumothorax.", "impression": "Tension pneumothorax."},
        author_name="Nakamura^Yuko",
        signed_at=NOW,
        series_instance_uid="2.25.1",
        sop_instance_uid="2.25.2",
        instance_number=1,
        critical=critical,
    )
    part10 = encode_part10(build_report_sr(report, header, evidence))
    assert dciodvfy_errors(part10) == []
    sr = pydicom.dcmread(__import__("io").BytesIO(part10))
    section = next(
        item
        for item in sr.ContentSequence
        if item.ValueType == "CONTAINER" and item.ConceptNameCodeSequence[0].CodeValue == "73568-8"
    )
    assert section.ConceptNameCodeSequence[0].CodingSchemeDesignator == "LN"
    items = [(c.ConceptNameCodeSequence[0].CodeValue, c.TextValue) for c in section.ContentSequence]
    assert items[0] == ("103391001", critical.flag)
    assert items[1] == ("121291", critical.communications[0])


# -- monitoring -------------------------------------------------------------------------------


def test_the_dashboard_counts_per_category_times_to_acknowledge_and_breaches(
    critical_app: Flask,
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    with critical_app.app_context():
        studies = db.session.scalars(select(Study).order_by(Study.id).limit(4)).all()
        for index, (study, category, waited, limit) in enumerate(
            (
                (studies[0], "immediate", 20, 30),  # in time
                (studies[1], "immediate", 50, 30),  # acknowledged late: a breach
                (studies[2], "urgent", 100, 360),  # in time
                (studies[3], "non_urgent", None, 10),  # open and overdue: a breach
            )
        ):
            report = Report(study_id=study.id, key=f"monitor{index}", status="final",
                            sections={}, created_at=now, updated_at=now)  # fmt: skip
            db.session.add(report)
            db.session.flush()
            flagged = now - datetime.timedelta(hours=5)
            db.session.add(
                CriticalResult(
                    study_id=study.id, report_id=report.id, category=category,
                    flagged_by="radiologist@example.org", flagged_by_name="Rad^Ray",
                    flagged_at=flagged, document_sequence=1,
                    due_at=flagged + datetime.timedelta(minutes=limit),
                    acknowledged_at=None if waited is None
                    else flagged + datetime.timedelta(minutes=waited),
                    acknowledged_by="" if waited is None else "referrer@example.org",
                )
            )  # fmt: skip
        db.session.commit()
        accessions = [s.accession_number for s in studies]
    client = critical_app.test_client()
    sign_in(client, "manager")
    page = client.get("/analytics").get_data(as_text=True)
    section = page.split('id="critical-monitoring"')[1]
    counts = dict(re.findall(r'data-category="(\w+)">.*?class="count">(\d+)<', section))
    assert counts == {"immediate": "2", "urgent": "1", "non_urgent": "1"}
    assert 'class="p50">50 min<' in section  # of 20, 50, 100
    assert 'class="p90">90 min<' in section
    breaches = section.split('id="critical-breaches"')[1]
    assert accessions[1] in breaches and accessions[3] in breaches
    assert accessions[0] not in breaches and accessions[2] not in breaches
    assert "Tension" not in section  # no report text for managers


@pytest.mark.requires("dciodvfy")
def test_the_archived_srs_carry_the_flag_then_the_call(
    tmp_path: Path,
    orthanc_env: dict[str, str],
    archive: ArchiveClient,
    password_hash: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the real archive: the final SR has the flag, the addendum's the call too."""
    monkeypatch.setattr("storage.accounts.hash_password", lambda password: password_hash)
    settings = load_settings(
        {**orthanc_env, "PACS_DATABASE_URL": new_database(tmp_path / "pacs.sqlite3")}
    )
    app = create_app({"PACS_SETTINGS": settings, "TESTING": True})
    with app.app_context():
        create_user(db.session, "radiologist@example.org", PASSWORD, "radiologist", NOW,
                    display_name="Yuko Nakamura")  # fmt: skip
        db.session.commit()
    study_uid, orthanc_id, _ = store_study(archive, ReferringPhysicianName="Referrer^Rita")
    ingest(app, archive, orthanc_id)
    client = app.test_client()
    rad = token_for(client, "radiologist")
    url = f"/api/v1/studies/{study_uid}/report"
    draft = client.put(url, json={"impression": "Tension pneumothorax."},
                       headers={**rad, "If-Match": '"0"'})  # fmt: skip
    assert draft.status_code == 200, draft.json
    signed = client.post(f"{url}/finalize", json={"critical": "immediate"},
                         headers={**rad, "If-Match": draft.headers["ETag"]})  # fmt: skip
    assert signed.status_code == 201, signed.json
    call = {
        "recipient": "Dr Who (ED)",
        "communicated_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "read_back": True,
    }
    recorded = client.post(f"/api/v1/studies/{study_uid}/critical-result/communications",
                           json=call, headers=rad)  # fmt: skip
    assert recorded.status_code == 201, recorded.json
    documents = wait_until_archived(client, url, rad)["documents"]
    assert [d["kind"] for d in documents] == ["final", "addendum"]
    assert all(d["archived"] for d in documents)
    texts = {}
    for document in documents:
        part10 = fetch_sr(
            archive, study_uid, document["series_instance_uid"], document["sop_instance_uid"]
        )
        assert dciodvfy_errors(part10) == [], document["kind"]
        texts[document["kind"]] = section_texts(read_part10(part10))
    final = texts["final"]["Communication of Critical Results"]
    assert len(final) == 1 and final[0].startswith("Critical result, Immediate (minutes)")
    assert "flagged by Nakamura Yuko" in final[0]
    addendum = texts["addendum"]["Communication of Critical Results"]
    assert addendum[0] == final[0]
    assert addendum[1].startswith("Communicated by telephone to Dr Who (ED)")
    assert addendum[1].endswith("read-back confirmed.")


def test_the_flow_escalates_from_the_environments_database(pipeline_settings) -> None:
    """The deployment's entry point, run as the pipeline runs it (a real Prefect server)."""
    from flows.escalate_critical_results import escalate_critical_results as flow
    from storage.database import open_session

    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    with open_session(pipeline_settings.database_url) as session:
        session.add(make_study(0, ingested_at=past, received_at=past))
        session.flush()
        study_id = session.scalar(select(Study.id))
        report = Report(study_id=study_id, key="flowtest", status="final", sections={},
                        created_at=past, updated_at=past)  # fmt: skip
        session.add(report)
        session.flush()
        session.add(
            CriticalResult(study_id=study_id, report_id=report.id, category="immediate",
                           flagged_by="r@example.org", flagged_by_name="R^R", flagged_at=past,
                           document_sequence=1, due_at=past + datetime.timedelta(minutes=60),
                           acknowledged_by="")
        )  # fmt: skip
    outcome = flow()
    assert len(outcome.escalated) == 1 and outcome.failed == {}
    assert flow().escalated == []
