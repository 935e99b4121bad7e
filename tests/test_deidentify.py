"""The anonymizer (core/deidentify.py, core/leaks.py, core/export_instances.py) against
studies full of synthetic identifiers, checked attribute by attribute against the Annex E
table itself, byte by byte for leaks, by reference and by dciodvfy."""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file

from core.deidentify import (
    PROFILE_PATH,
    Deidentifier,
    Option,
    ProfileError,
    format_profile,
    parse_profile,
)
from core.export_instances import InstanceResult, deidentify_files, deidentify_instance
from tests.support.identified_studies import (
    PATIENTS,
    PRIVATE_CREATOR,
    add_identifiers,
    build_identified_cohort,
    identifiers_of,
)
from tests.support.studies import demo_study

SALT = b"0123456789abcdef0123456789abcdef"
ALL_OPTIONS = frozenset(Option)
# With the institution option the institution's name is kept on purpose.
KEPT_BY_OPTION = {Option.INSTITUTION_IDENTITY: {p.institution for p in PATIENTS}}


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def run(options: frozenset[Option], salt: bytes = SALT) -> list[tuple[Dataset, InstanceResult]]:
    cohort = build_identified_cohort()
    deidentifier = Deidentifier(salt=salt, options=options)
    return [(ds, deidentify_instance(encode(ds), deidentifier)) for ds in cohort.datasets]


@pytest.fixture(scope="module")
def cohort():
    return build_identified_cohort()


def annex_e() -> list[dict[str, str]]:
    return json.loads(PROFILE_PATH.read_text())


def test_the_table_is_vendored_with_its_attribution() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared/data/ps3.15-annex-e-attributes.json"
    if shared.exists():
        assert PROFILE_PATH.read_bytes() == shared.read_bytes()
    attribution = (PROFILE_PATH.parent / "ATTRIBUTION.md").read_text()
    assert "Copyright (c) 2017 Innolitics, LLC" in attribution
    assert "MIT" in attribution
    assert len(annex_e()) > 600


def test_profiles_parse_and_refuse_unknown_options() -> None:
    assert parse_profile("basic") == frozenset()
    assert parse_profile("basic, modified-dates,clean-descriptors") == {
        Option.MODIFIED_DATES,
        Option.CLEAN_DESCRIPTORS,
    }
    assert format_profile({Option.MODIFIED_DATES}) == "basic,modified-dates"
    with pytest.raises(ProfileError, match="unknown profile option"):
        parse_profile("basic,keep-names")
    with pytest.raises(ProfileError, match="must start with 'basic'"):
        parse_profile("modified-dates")


def expected_outcomes(action: str) -> set[str]:
    """What a basic-profile action may leave: removed, empty, dummy, new UID, kept."""
    return {
        "X": {"removed"},
        "Z": {"empty"},
        "D": {"dummy"},
        "U": {"uid"},
        "K": {"kept"},
        "X/Z": {"removed", "empty"},
        "X/D": {"removed", "dummy"},
        "Z/D": {"empty", "dummy"},
        "X/Z/D": {"removed", "empty", "dummy"},
        "X/Z/U*": {"removed", "empty", "uid"},
    }[action]


def outcome_of(source: object, output: Dataset, tag: int, deidentifier: Deidentifier) -> str:
    if tag not in output:
        return "removed"
    value = output[tag].value
    if output[tag].VR == "SQ":
        return "empty" if len(value) == 0 else "uid" if tag in (0x00081140, 0x00082112) else "dummy"
    if value in (None, "", b""):
        return "empty"
    if output[tag].VR == "UI":
        return "uid" if str(value) == deidentifier.new_uid(str(source)) else "other"
    if value == source:
        return "kept"
    return "dummy"


def test_every_annex_e_attribute_present_gets_its_basic_action(cohort) -> None:
    table = {
        int(entry["id"], 16): entry
        for entry in annex_e()
        if entry["id"][:4].isalnum() and all(c in "0123456789abcdef" for c in entry["id"])
    }
    deidentifier = Deidentifier(salt=SALT)
    checked = 0
    for source in cohort.datasets:
        result = deidentify_instance(encode(source), deidentifier)
        if result.status != "exported":
            continue
        output = dcmread(io.BytesIO(result.data))
        for tag in list(source.keys()):
            entry = table.get(tag)
            if entry is None:
                continue
            if tag in (0x00100010, 0x00100020):  # the pseudonym stands in for name and ID
                assert output[tag].value == result.pseudonym
                continue
            outcome = outcome_of(source[tag].value, output, tag, deidentifier)
            assert outcome in expected_outcomes(entry["basicProfile"]), (entry["name"], outcome)
            checked += 1
    assert checked > 300


def test_private_data_overlays_and_curves_are_removed(cohort) -> None:
    result = deidentify_instance(encode(cohort.datasets[0]), Deidentifier(salt=SALT))
    output = dcmread(io.BytesIO(result.data))
    assert not [elem for elem in output.iterall() if elem.tag.is_private]
    assert not [tag for tag in list(output.keys()) if (tag >> 16) & 0xFF00 in (0x5000, 0x6000)]


def test_safe_private_elements_stay_with_the_option() -> None:
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", "SAFE-VALUE-1")
    block.add_new(0x02, "LO", "unsafe text")
    safe = frozenset({(PRIVATE_CREATOR, 0x01)})
    kept = Deidentifier(salt=SALT, options={Option.SAFE_PRIVATE}, safe_private=safe)
    output = dcmread(io.BytesIO(deidentify_instance(encode(ds), kept).data))
    values = [str(elem.value) for elem in output.iterall() if elem.tag.is_private]
    assert values == [PRIVATE_CREATOR, "SAFE-VALUE-1"]
    removed = Deidentifier(salt=SALT, safe_private=safe)
    output = dcmread(io.BytesIO(deidentify_instance(encode(ds), removed).data))
    assert not [elem for elem in output.iterall() if elem.tag.is_private]


@pytest.mark.parametrize("options", [frozenset(), ALL_OPTIONS], ids=["basic", "all-options"])
def test_no_source_identifier_in_any_output_byte(cohort, options) -> None:
    allowed = set().union(*(KEPT_BY_OPTION.get(option, set()) for option in options))
    searched = (cohort.identifiers - allowed) | cohort.source_uids
    results = run(options)
    exported = [result for _, result in results if result.status == "exported"]
    assert len(exported) >= 13
    for result in exported:
        data = result.data.lower()
        for value in searched:
            for encoding in ("utf-8", "latin-1"):
                try:
                    needle = value.lower().encode(encoding)
                except UnicodeEncodeError:
                    continue
                assert needle not in data, value


def test_every_reference_resolves_inside_the_export() -> None:
    results = run(ALL_OPTIONS)
    exported = [dcmread(io.BytesIO(r.data)) for _, r in results if r.status == "exported"]
    excluded = {r.sop_uid for _, r in results if r.status == "excluded"}
    excluded_series = {r.series_uid for _, r in results if r.status == "excluded"}
    sops = {ds.SOPInstanceUID for ds in exported}
    series = {ds.SeriesInstanceUID for ds in exported}
    studies = {ds.StudyInstanceUID for ds in exported}
    frames = {
        ds.StudyInstanceUID: ds.FrameOfReferenceUID
        for ds in exported
        if "FrameOfReferenceUID" in ds and ds.Modality != "SR"
    }
    references = 0
    for ds in exported:
        for elem in ds.iterall():
            if elem.keyword == "ReferencedSOPInstanceUID":
                # The one dangling kind: an instance excluded for burned-in annotation.
                assert elem.value in sops or elem.value in excluded
                references += elem.value in sops
            elif elem.keyword == "SeriesInstanceUID":
                assert elem.value in series or elem.value in excluded_series
            elif elem.keyword == "StudyInstanceUID":
                assert elem.value in studies
        if "FrameOfReferenceUID" in ds:
            assert ds.FrameOfReferenceUID == frames[ds.StudyInstanceUID]
    assert references >= 7  # derived CT and MR series, and the report's evidence


def test_rerun_gives_the_same_pseudonyms_uids_and_bytes_and_another_salt_does_not() -> None:
    first = [r for _, r in run(ALL_OPTIONS)]
    again = [r for _, r in run(ALL_OPTIONS)]
    # The cohort is rebuilt with fresh source UIDs: compare what depends on the salt only.
    assert [r.pseudonym for r in first] == [r.pseudonym for r in again]
    other = [r for _, r in run(ALL_OPTIONS, salt=b"another salt of 32 bytes........")]
    assert {r.pseudonym for r in first}.isdisjoint({r.pseudonym for r in other})
    cohort = build_identified_cohort()
    deidentifier = Deidentifier(salt=SALT, options=ALL_OPTIONS)
    files = [encode(ds) for ds in cohort.datasets]
    inline = deidentify_files(files, deidentifier, workers=1)
    pooled = deidentify_files(files, Deidentifier(salt=SALT, options=ALL_OPTIONS), workers=2)
    assert [r.data for r in inline] == [r.data for r in pooled]
    assert [r.sop_uid for r in inline] == [r.sop_uid for r in pooled]


def test_pseudonyms_and_date_shifts_are_per_patient() -> None:
    results = run(ALL_OPTIONS)
    by_patient: dict[str, set[tuple[str, int]]] = {}
    for source, result in results:
        by_patient.setdefault(source.PatientID, set()).add((result.pseudonym, result.shift_days))
        if result.status == "exported":
            output = dcmread(io.BytesIO(result.data))
            assert output.PatientName == output.PatientID == result.pseudonym
            assert output.PatientIdentityRemoved == "YES"
            assert output.LongitudinalTemporalInformationModified == "MODIFIED"
            codes = {item.CodeValue for item in output.DeidentificationMethodCodeSequence}
            assert codes == {
                "113100",
                "113104",
                "113105",
                "113107",
                "113108",
                "113109",
                "113111",
                "113112",
            }
            shifted = source.StudyDate
            import datetime as dt

            day = dt.datetime.strptime(shifted, "%Y%m%d") + dt.timedelta(days=result.shift_days)
            assert output.StudyDate == day.strftime("%Y%m%d")
            assert output.get("PatientBirthDate", "") == ""
    assert all(len(identities) == 1 for identities in by_patient.values())
    assert len({next(iter(v))[0] for v in by_patient.values()}) == len(PATIENTS)
    assert all(-3650 <= next(iter(v))[1] <= -30 for v in by_patient.values())


def test_burned_in_and_reports_are_excluded_by_default_with_reasons() -> None:
    results = run(frozenset())
    reasons = sorted(r.reason for _, r in results if r.status == "excluded")
    assert reasons == [
        "burned-in annotation (Burned In Annotation = YES)",
        "may carry burned-in annotation (US without Burned In Annotation = NO)",
        "structured report (included only with the structured-content option)",
    ]


def test_reports_with_structured_content_keep_their_text_cleaned() -> None:
    results = run(frozenset({Option.STRUCTURED_CONTENT}))
    (report,) = [r for source, r in results if source.Modality == "SR"]
    assert report.status == "exported"
    output = dcmread(io.BytesIO(report.data))
    texts = [elem.value for elem in output.iterall() if elem.keyword == "TextValue"]
    assert texts == ["() has no acute findings. Call ."]
    names = [str(elem.value) for elem in output.iterall() if elem.keyword == "PersonName"]
    assert names == ["ANONYMIZED"]


def test_an_identifier_the_profile_keeps_is_caught_and_withheld(cohort) -> None:
    ds = cohort.datasets[0].copy()
    ds.ConvolutionKernel = PATIENTS[0].extra_names[0]  # outside the table: kept by the profile
    result = deidentify_instance(encode(ds), Deidentifier(salt=SALT))
    assert result.status == "withheld"
    assert result.reason.endswith("source identifier(s) still present after de-identification")
    assert result.data == b""


def test_unreadable_files_are_withheld() -> None:
    result = deidentify_instance(b"not dicom at all", Deidentifier(salt=SALT))
    assert (result.status, result.reason) == ("withheld", "unreadable: InvalidDicomError")


def count_dciodvfy_errors(path: Path) -> list[str]:
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.requires("dciodvfy")
def test_dciodvfy_reports_no_new_errors(cohort, tmp_path: Path) -> None:
    deidentifier = Deidentifier(salt=SALT, options=ALL_OPTIONS)
    sources = cohort.datasets + [
        dcmread(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm")
    ]
    checked = 0
    for index, ds in enumerate(sources):
        data = encode(ds)
        result = deidentify_instance(data, deidentifier)
        if result.status != "exported":
            continue
        before, after = tmp_path / f"{index}-in.dcm", tmp_path / f"{index}-out.dcm"
        before.write_bytes(data)
        after.write_bytes(result.data)
        new = set(count_dciodvfy_errors(after)) - set(count_dciodvfy_errors(before))
        assert not new, (ds.Modality, new)
        checked += 1
    assert checked >= 15


def test_a_multi_frame_cine_keeps_its_frames_and_loses_its_identifiers(tmp_path: Path) -> None:
    source = copy.deepcopy(demo_study("US").datasets[-1])
    assert int(source.NumberOfFrames) > 1
    add_identifiers(source, PATIENTS[1])
    source.BurnedInAnnotation = "NO"
    data = encode(source)
    result = deidentify_instance(data, Deidentifier(salt=SALT, options=ALL_OPTIONS))
    assert result.status == "exported", result.reason
    output = dcmread(io.BytesIO(result.data))
    assert output.NumberOfFrames == source.NumberOfFrames
    assert output.PixelData == source.PixelData
    for value in identifiers_of(PATIENTS[1]) - {PATIENTS[1].institution}:
        assert value.lower().encode("latin-1") not in result.data.lower(), value
    if shutil.which("dciodvfy"):
        before, after = tmp_path / "in.dcm", tmp_path / "out.dcm"
        before.write_bytes(data)
        after.write_bytes(result.data)
        assert not set(count_dciodvfy_errors(after)) - set(count_dciodvfy_errors(before))
