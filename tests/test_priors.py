"""Priors: the patient's other studies on the study page, the report editor and the
referrer's report page; relevant marks; Compare opening two studies in the viewer through
the proxy's per-study rules."""

from __future__ import annotations

import datetime
import re

from flask import Flask
from sqlalchemy import select

from core.priors import comparison_line, is_relevant
from core.records import StudyStatus
from portal.extensions import db
from storage.models.accounts import AuditEvent, User
from storage.models.reports import Report
from storage.models.studies import Study, StudyEvent
from tests.support.apps import make_study
from tests.support.users import NOW, sign_in, token_for

CURRENT = "1.2.826.0.1.3680043.10.900"
REFERRER_NAME = "Referrer^Rita"


def test_relevance_is_a_shared_modality_or_body_part() -> None:
    assert is_relevant("CT", "CHEST", "CT", "HEAD")
    assert is_relevant("CT\\SR", "CHEST", "CR", "chest")
    assert is_relevant("PT\\CT", "", "CT", "")
    assert not is_relevant("CT", "CHEST", "MR", "HEAD")
    assert not is_relevant("CT\\SR", "", "MR\\SR", "")  # report series do not count
    assert not is_relevant("CT", "", "MR", "")  # no body part: no match on emptiness


def test_the_comparison_line_names_modality_body_part_and_date() -> None:
    date = datetime.date(2026, 10, 2)
    assert comparison_line("CT", "CHEST", "", date) == "Comparison: CT chest 2026-10-02"
    assert comparison_line("CT\\SR", "", "Head w/o", date) == "Comparison: CT Head w/o 2026-10-02"
    assert comparison_line("", "", "", None) == "Comparison: Study date unknown"


def add_patient_studies(app: Flask) -> dict[str, str]:
    """One patient's current CT chest and their priors, plus look-alikes that are not theirs."""
    specs = {
        "current": dict(study_date=datetime.date(2026, 11, 20), modalities="CT\\SR",
                        body_part="CHEST", status=StudyStatus.IN_PROGRESS),
        "ct_chest": dict(study_date=datetime.date(2026, 10, 2), modalities="CT",
                         body_part="CHEST", status=StudyStatus.FINAL,
                         referring_physician="REFERRER^RITA"),
        "mr_brain": dict(study_date=datetime.date(2026, 9, 1), modalities="MR",
                         body_part="HEAD", status=StudyStatus.FINAL,
                         referring_physician="Other^Otto"),
        "cr_chest": dict(study_date=datetime.date(2026, 8, 15), modalities="CR",
                         body_part="CHEST", status=StudyStatus.RECEIVED,
                         referring_physician=REFERRER_NAME),
        "undated": dict(study_date=None, study_datetime=None, modalities="US",
                        body_part="ABDOMEN", status=StudyStatus.RECEIVED),
        # Not this patient's: another issuer, a similar name, a removed or quarantined study.
        "other_issuer": dict(issuer_of_patient_id="OTHER-HOSPITAL", modalities="CT",
                             study_date=datetime.date(2026, 11, 1)),
        "similar_name": dict(patient_id="P-0000042", modalities="CT",
                             study_date=datetime.date(2026, 11, 2)),
        "removed": dict(status=StudyStatus.REMOVED, modalities="CT",
                        study_date=datetime.date(2026, 11, 3)),
        "quarantined": dict(status=StudyStatus.QUARANTINED, modalities="CT",
                            study_date=datetime.date(2026, 11, 4)),
    }  # fmt: skip
    uids = {}
    with app.app_context():
        for index, (name, spec) in enumerate(specs.items()):
            uid = CURRENT if name == "current" else f"{CURRENT}.{index}"
            values = dict(
                study_instance_uid=uid,
                orthanc_id=f"prior-{index}",
                patient_name="Doe^Jane",
                patient_id="P-000042",
                issuer_of_patient_id="HOSPITAL",
                study_datetime=datetime.datetime(2026, 1, 1, 9),
                referring_physician=REFERRER_NAME,
            )
            if spec.get("study_date"):
                values["study_datetime"] = datetime.datetime.combine(
                    spec["study_date"], datetime.time(9)
                )
            values.update(spec)
            values["modality"] = values["modalities"].split("\\")[0]
            study = make_study(100 + index, **values)
            db.session.add(study)
            uids[name] = uid
        db.session.flush()
        for name, impression in (("ct_chest", "Small nodule, stable."), ("mr_brain", "Normal.")):
            study = db.session.scalar(select(Study).where(Study.study_instance_uid == uids[name]))
            db.session.add(
                Report(study_id=study.id, key=f"key-{name}", status="final", version=2,
                       sections={"impression": impression, "findings": "..."},
                       created_at=NOW, updated_at=NOW)
            )  # fmt: skip
        referrer = db.session.scalar(select(User).where(User.email == "referrer@example.org"))
        referrer.dicom_name = REFERRER_NAME
        db.session.commit()
    return uids


def test_priors_are_the_same_patient_newest_first_with_relevant_marks(app: Flask) -> None:
    uids = add_patient_studies(app)
    client = app.test_client()
    answer = client.get(f"/api/v1/studies/{CURRENT}/priors", headers=token_for(client, "admin"))
    assert answer.status_code == 200, answer.json
    items = answer.json["items"]
    by_uid = {uid: name for name, uid in uids.items()}
    assert [by_uid[item["study_instance_uid"]] for item in items] == [
        "ct_chest",
        "mr_brain",
        "cr_chest",
        "undated",
    ]
    assert {by_uid[i["study_instance_uid"]]: i["relevant"] for i in items} == {
        "ct_chest": True,  # same modality
        "mr_brain": False,
        "cr_chest": True,  # same body part
        "undated": False,
    }
    first = items[0]
    assert first["impression"] == "Small nodule, stable."
    assert first["comparison"] == "Comparison: CT chest 2026-10-02"
    assert first["modalities"] == ["CT"] and first["status"] == "final"
    assert first["compare_url"].startswith("/viewer/viewer?")
    assert f"StudyInstanceUIDs={CURRENT},{uids['ct_chest']}" in first["compare_url"]
    assert "hangingProtocolId=@ohif/hpCompare" in first["compare_url"]


def test_a_study_without_patient_id_has_no_priors(app: Flask) -> None:
    with app.app_context():
        db.session.add(make_study(200, patient_id="", study_instance_uid="1.2.3.200"))
        db.session.add(make_study(201, patient_id="", study_instance_uid="1.2.3.201"))
        db.session.commit()
    client = app.test_client()
    answer = client.get("/api/v1/studies/1.2.3.200/priors", headers=token_for(client, "admin"))
    assert answer.json["items"] == []


def test_a_referrer_sees_only_priors_they_may_see(app: Flask) -> None:
    uids = add_patient_studies(app)
    client = app.test_client()
    headers = token_for(client, "referrer")
    # The current study is not reported yet: not theirs to ask about.
    assert client.get(f"/api/v1/studies/{CURRENT}/priors", headers=headers).status_code == 404
    # From their reported CT chest: the other reported studies referred by them only.
    answer = client.get(f"/api/v1/studies/{uids['ct_chest']}/priors", headers=headers)
    assert answer.status_code == 200
    assert answer.json["items"] == []  # mr_brain is another physician's, cr_chest unreported
    with app.app_context():
        cr = db.session.scalar(select(Study).where(Study.study_instance_uid == uids["cr_chest"]))
        cr.status = StudyStatus.FINAL
        db.session.commit()
    answer = client.get(f"/api/v1/studies/{uids['ct_chest']}/priors", headers=headers)
    assert [i["study_instance_uid"] for i in answer.json["items"]] == [uids["cr_chest"]]
    assert answer.json["items"][0]["impression"] == ""  # no report row: nothing to show
    for role in ("manager", "researcher"):
        refused = client.get(f"/api/v1/studies/{CURRENT}/priors", headers=token_for(client, role))
        assert refused.status_code == 403
    with app.app_context():
        denied = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "view_priors")
        ).all()
        assert [e.outcome for e in denied][:1] == ["denied"]


def test_the_study_page_editor_and_report_page_list_priors_with_compare_links(
    app: Flask,
) -> None:
    uids = add_patient_studies(app)
    client = app.test_client()
    sign_in(client, "radiologist")
    page = client.get(f"/studies/{CURRENT}").get_data(as_text=True)
    rows = re.findall(r'data-prior-uid="([0-9.]+)" class="(relevant)?"', page)
    assert [uid for uid, _ in rows] == [
        uids[n] for n in ("ct_chest", "mr_brain", "cr_chest", "undated")
    ]
    assert [bool(mark) for _, mark in rows] == [True, False, True, False]
    assert "Small nodule, stable." in page
    assert uids["other_issuer"] not in page and uids["similar_name"] not in page
    editor = client.get(f"/studies/{CURRENT}/report/edit").get_data(as_text=True)
    assert 'data-comparison="Comparison: CT chest 2026-10-02"' in editor
    assert "hangingProtocolId=@ohif/hpCompare" in editor
    client = app.test_client()
    sign_in(client, "referrer")
    report_page = client.get(f"/studies/{uids['ct_chest']}/report").get_data(as_text=True)
    assert 'id="priors"' in report_page
    assert (
        uids["mr_brain"] not in report_page and CURRENT not in report_page.split('id="priors"')[1]
    )


def test_compare_is_refused_when_the_prior_is_not_the_referrers(app: Flask) -> None:
    uids = add_patient_studies(app)
    client = app.test_client()
    sign_in(client, "referrer")
    refused = client.get(
        f"/viewer/viewer?StudyInstanceUIDs={uids['ct_chest']},{uids['mr_brain']}"
        "&hangingProtocolId=@ohif/hpCompare"
    )
    assert refused.status_code in (403, 503)  # 503: no viewer bundle in this test's settings
    if refused.status_code == 403:
        assert "you may only view studies you referred" in refused.get_data(as_text=True)
    for path in (
        f"/dicom-web/studies/{uids['mr_brain']}/series",
        f"/dicom-web/studies?StudyInstanceUID={uids['ct_chest']},{uids['mr_brain']}",
        f"/dicom-web/studies?StudyInstanceUID={uids['mr_brain']}",
    ):
        assert client.get(path).status_code == 403, path


def test_a_compared_prior_is_not_a_first_opening_for_turnaround(app: Flask) -> None:
    uids = add_patient_studies(app)
    client = app.test_client()
    sign_in(client, "radiologist")
    client.get(f"/viewer/viewer?StudyInstanceUIDs={CURRENT},{uids['ct_chest']}")
    with app.app_context():
        opened = db.session.scalars(
            select(Study.study_instance_uid).join(StudyEvent).where(StudyEvent.kind == "opened")
        ).all()
    assert uids["ct_chest"] not in opened
