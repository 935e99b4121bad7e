"""Teaching files for the pages and the API: create a case (and its de-identified copy),
search, read, edit, retire, export the collection as a ZIP. Every step is audited.

Roles: radiologists create cases and edit or retire their own; radiologists, researchers and
admins browse, read, open in the viewer and export; admins may retire any case and alone
see which study (and patient) a case was made from.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from apiflask import abort
from flask import current_app
from flask_login import current_user
from pydicom import dcmread

from core.accounts import Role
from core.teaching import (
    MANIFEST_NAME,
    CaseState,
    Location,
    TeachingError,
    build_manifest,
    check_may_edit,
    check_series_choice,
    parse_case_text,
)
from portal.extensions import db
from portal.security import audit, utc_now
from storage.archive import ArchiveClient, ArchiveError
from storage.assignments import find_listed_study
from storage.models.teaching import TeachingCase
from storage.teaching import (
    copy_series,
    create_case,
    fail_copy,
    finish_copy,
    get_case,
    search_cases,
    set_case_text,
)

ZIP_CASE_LIMIT = 200


def refuse(action: str, error: TeachingError, object_id: str = "") -> NoReturn:
    db.session.rollback()
    audit(action, "denied", object_type="teaching_case", object_id=object_id, detail=str(error))
    db.session.commit()
    abort(error.status, str(error))


def settings() -> Any:
    return current_app.config["PACS_SETTINGS"]


def copy_target() -> tuple[str, ArchiveClient]:
    """Where copies go: the research Orthanc when one is configured, else the archive."""
    config = settings()
    if config.research_orthanc_url:
        client = ArchiveClient(
            config.research_orthanc_url,
            config.research_orthanc_user,
            config.research_orthanc_password,
        )
        return Location.RESEARCH, client
    return Location.ARCHIVE, ArchiveClient.from_settings(config)


def archive_of(case: TeachingCase) -> ArchiveClient:
    config = settings()
    if case.location == Location.RESEARCH:
        return ArchiveClient(
            config.research_orthanc_url,
            config.research_orthanc_user,
            config.research_orthanc_password,
        )
    return ArchiveClient.from_settings(config)


def create(study_uid: str, series_uids: list[str], form: Mapping[str, object]) -> TeachingCase:
    """Record the case (committed first), then copy its key series de-identified."""
    study = find_listed_study(db.session, study_uid)
    if study is None:
        refuse("teaching_create", TeachingError(f"no study {study_uid!r}", 404), study_uid)
    try:
        text = parse_case_text(form)
        chosen = check_series_choice(series_uids, [s.series_instance_uid for s in study.series])
    except TeachingError as error:
        refuse("teaching_create", error, study_uid)
    location, target = copy_target()
    case = create_case(
        db.session,
        study=study,
        series_uids=chosen,
        text=text,
        author=current_user.user,
        location=location,
        now=utc_now(),
    )
    audit(
        "teaching_create",
        object_type="teaching_case",
        object_id=str(case.id),
        study_uid=study_uid,
        detail=f"{len(chosen)} series -> {location}",
    )
    db.session.commit()
    make_copy(case, study_uid, target)
    return case


def make_copy(case: TeachingCase, study_uid: str, target: ArchiveClient) -> None:
    try:
        with ArchiveClient.from_settings(settings()) as source, target:
            outcome = copy_series(source, target, case, study_uid)
    except ArchiveError as error:
        fail_copy(db.session, case, f"the archive failed: {type(error).__name__}", utc_now())
        audit("teaching_copy", "error", object_type="teaching_case", object_id=str(case.id))
    else:
        finish_copy(db.session, case, outcome, utc_now())
        left = sum(int(item["instances"]) for item in outcome.left_out)
        audit(
            "teaching_copy",
            "success" if outcome.stored else "error",
            object_type="teaching_case",
            object_id=str(case.id),
            detail=f"{outcome.stored} instances copied, {left} left out",
        )
    db.session.commit()


def retry_copy(case_id: int) -> TeachingCase:
    """Make the copy again (a copy cut short, or failed): the same UIDs, so no duplicate."""
    case = editable_case(case_id, "teaching_copy")
    if case.state == CaseState.READY or case.source_study is None:
        refuse("teaching_copy", TeachingError("this case has nothing to copy again", 409))
    make_copy(case, case.source_study.study_instance_uid, archive_of(case))
    return case


def visible_case(case_id: int) -> TeachingCase:
    """A case a reader may see: ready and current, or their own in any state."""
    try:
        case = get_case(db.session, case_id)
    except TeachingError as error:
        refuse("teaching_view", error, str(case_id))
    current = case.state == CaseState.READY and case.retired_at is None
    mine = case.author_id == current_user.user_id
    if not (current or mine or current_user.role == Role.ADMIN):
        refuse("teaching_view", TeachingError(f"no teaching case {case_id}", 404))
    return case


def editable_case(case_id: int, action: str) -> TeachingCase:
    try:
        case = get_case(db.session, case_id)
        check_may_edit(
            editor_id=current_user.user_id,
            editor_is_admin=current_user.role == Role.ADMIN and action == "teaching_retire",
            author_id=case.author_id,
        )
    except TeachingError as error:
        refuse(action, error, str(case_id))
    return case


def read(case_id: int) -> TeachingCase:
    case = visible_case(case_id)
    audit("teaching_view", object_type="teaching_case", object_id=str(case.id))
    db.session.commit()
    return case


def edit(case_id: int, form: Mapping[str, object]) -> TeachingCase:
    case = editable_case(case_id, "teaching_edit")
    try:
        set_case_text(case, parse_case_text(form), utc_now())
    except TeachingError as error:
        refuse("teaching_edit", error, str(case_id))
    audit("teaching_edit", object_type="teaching_case", object_id=str(case.id))
    db.session.commit()
    return case


def retire(case_id: int) -> TeachingCase:
    case = editable_case(case_id, "teaching_retire")
    if case.retired_at is None:
        case.retired_at = utc_now()
    audit("teaching_retire", object_type="teaching_case", object_id=str(case.id))
    db.session.commit()
    return case


def search(args: Mapping[str, str]) -> list[TeachingCase]:
    filters = {
        name: str(args.get(name) or "").strip()[:100]
        for name in ("text", "keyword", "modality", "diagnosis")
    }
    cases = search_cases(db.session, author_id=current_user.user_id, **filters)
    audit(
        "teaching_search",
        object_type="teaching_cases",
        detail=" ".join(f"{k}={v}" for k, v in filters.items() if v)[:1024],
    )
    db.session.commit()
    return cases


def describe(case: TeachingCase) -> dict[str, Any]:
    """A case as the current user may see it: the source study for admins only."""
    described: dict[str, Any] = {
        **describe_content(case),
        "state": case.state,
        "instances": case.instances,
        "left_out": case.left_out,
        "author": case.author.email,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
        "retired": case.retired_at is not None,
    }
    if current_user.role == Role.ADMIN and case.source_study is not None:
        described["source_study_uid"] = case.source_study.study_instance_uid
        described["source_patient_name"] = case.source_study.patient_name
    return described


def describe_content(case: TeachingCase) -> dict[str, Any]:
    """What a case teaches and where its copy is: the API's view and the export's manifest."""
    return {
        "id": case.id,
        "title": case.title,
        "diagnosis": case.diagnosis,
        "findings": case.findings,
        "keywords": [k for k in case.keywords.split(", ") if k],
        "difficulty": case.difficulty,
        "modality": case.modality,
        "study_uid": case.copy_study_uid,
    }


def manifest_entry(case: TeachingCase, files: list[str]) -> dict[str, object]:
    return {**describe_content(case), "files": files}


def export_zip(cases: list[TeachingCase]) -> Path:
    """The cases' copies and `teaching-manifest.json` in a ZIP under PACS_HOME/tmp (the
    caller sends and removes it)."""
    ready = [case for case in cases if case.state == CaseState.READY][:ZIP_CASE_LIMIT]
    folder = settings().home / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=folder, prefix="teaching-", suffix=".zip")
    path = Path(name)
    entries = []
    try:
        with open(descriptor, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
            for case in ready:
                names = []
                for name, data in read_copy(case):
                    archive.writestr(name, data)
                    names.append(name)
                entries.append(manifest_entry(case, names))
            archive.writestr(MANIFEST_NAME, build_manifest(entries))
    except ArchiveError:
        path.unlink(missing_ok=True)
        abort(502, "the archive could not give the teaching copies; try again in a moment")
    audit(
        "teaching_export",
        object_type="teaching_cases",
        detail=f"{len(entries)} cases: {', '.join(str(case.id) for case in ready)}"[:1024],
    )
    db.session.commit()
    return path


def read_copy(case: TeachingCase) -> Iterator[tuple[str, bytes]]:
    """(`case-N/SeriesUID/SOPUID.dcm`, bytes) of each instance of the case's copy."""
    with archive_of(case) as client:
        for study_id in client.find_study_ids(case.copy_study_uid):
            for item in client.get_study_instances(study_id):
                data = client.get_instance_file(item["ID"])
                ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
                yield f"case-{case.id}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm", data
