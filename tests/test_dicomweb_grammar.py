"""The DICOMweb grammar of the viewer's proxy, rule by rule, without a portal or archive."""

from __future__ import annotations

import pytest

from portal.viewer.grammar import RequestRefused, check_single_study, parse_request

S = "1.2.826.0.1.3680043.8.498.1"
SE = "1.2.826.0.1.3680043.8.498.2"
I = "1.2.826.0.1.3680043.8.498.3"  # noqa: E741
INSTANCE = f"studies/{S}/series/{SE}/instances/{I}"


@pytest.mark.parametrize(
    ("path", "search"),
    [
        ("studies", True),
        ("series", True),
        ("instances", True),
        (f"studies/{S}/series", True),
        (f"studies/{S}/instances", True),
        (f"studies/{S}/series/{SE}/instances", True),
        (f"studies/{S}/metadata", False),
        (f"studies/{S}/series/{SE}/metadata", False),
        (f"studies/{S}/series/{SE}/rendered", False),
        (f"{INSTANCE}/metadata", False),
        (f"{INSTANCE}/thumbnail", False),
        (f"{INSTANCE}/frames/1", False),
        (f"{INSTANCE}/frames/1,2,3", False),
        (f"{INSTANCE}/frames/2/rendered", False),
        (f"{INSTANCE}/bulk/7fe00010", False),
        (f"{INSTANCE}/bulk/00540016/0/00181072", False),
    ],
)
def test_the_viewers_resources_parse(path: str, search: bool) -> None:
    parsed = parse_request(path, [])
    assert parsed.is_search is search
    assert parsed.upstream_path() == path


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("", 400),
        ("studies/", 400),
        (f"studies//{S}", 400),
        (f"studies/{S}/../../patients", 400),
        (f"studies/{S}/./series", 400),
        (f"studies/{S}\\series", 400),
        (f"studies/{S}/series%2F", 400),
        (f"studies/{S};x/series", 400),
        ("patients", 404),
        ("tools/find", 404),
        (f"studies/{S}", 404),
        (f"studies/{S}/series/{SE}", 404),
        (f"{INSTANCE}", 404),
        (f"{INSTANCE}/frames/0", 404),
        (f"{INSTANCE}/frames/01", 404),
        (f"{INSTANCE}/bulk", 404),
        (f"{INSTANCE}/bulk/7fe00010/0", 404),
        (f"{INSTANCE}/bulk/xyz", 404),
        ("studies/1..2/series", 404),
        (f"studies/{'1' * 65}/series", 404),
    ],
)
def test_everything_else_is_refused(path: str, status: int) -> None:
    with pytest.raises(RequestRefused) as refused:
        parse_request(path, [])
    assert refused.value.status == status


def test_a_raw_path_with_encodings_is_refused_even_when_it_decodes_well() -> None:
    with pytest.raises(RequestRefused):
        parse_request(f"studies/{S}/series", [], raw_path=f"/dicom-web/studies/{S}%2Fseries")
    assert parse_request(f"studies/{S}/series", [], raw_path=f"/dicom-web/studies/{S}/series")


def test_search_parameters_are_keywords_once_with_checked_values() -> None:
    parsed = parse_request(
        "studies",
        [("PatientName", "Doe^J*"), ("includefield", "00081030,StudyDescription"), ("limit", "25")],
    )
    assert parsed.query == (
        ("PatientName", "Doe^J*"),
        ("includefield", "00081030"),
        ("includefield", "StudyDescription"),
        ("limit", "25"),
    )
    for pairs in (
        [("PatientName", "a"), ("PatientName", "b")],
        [("00091010", "x")],  # a private tag: no keyword
        [("00081199", "x")],  # a sequence, named by tag
        [("0020000D", S), ("StudyInstanceUID", S)],  # one attribute, two spellings
        [("studyinstanceuid", S)],
        [("ReferencedStudySequence", "x")],
        [("StudyInstanceUID", "1.2.*")],
        [("PatientName", "a\r\nb")],
        [("limit", "0")],
        [("limit", "100000")],
        [("offset", "-1")],
        [("fuzzymatching", "1")],
        [("includefield", "../x")],
    ):
        with pytest.raises(RequestRefused) as refused:
            parse_request("studies", pairs)
        assert refused.value.status == 400, pairs


def test_search_attributes_named_by_tag_become_keywords() -> None:
    """OHIF looks up the patient's other studies with `00100020=...`: accepted, under the
    keyword, so that a study named by tag is still a study to the per-study checks."""
    parsed = parse_request("studies", [("00100020", "PID-1"), ("0020000D", S)])
    assert parsed.query == (("PatientID", "PID-1"), ("StudyInstanceUID", S))
    assert parsed.query_study_uids == (S,)


def test_retrievals_take_no_parameters_but_rendering_its_own() -> None:
    with pytest.raises(RequestRefused):
        parse_request(f"{INSTANCE}/metadata", [("x", "1")])
    rendered = parse_request(f"{INSTANCE}/rendered", [("quality", "90"), ("window", "40,400")])
    assert rendered.query == (("quality", "90"), ("window", "40,400"))
    for pairs in ([("quality", "0")], [("viewport", "a")], [("quality", "9"), ("quality", "9")]):
        with pytest.raises(RequestRefused):
            parse_request(f"{INSTANCE}/rendered", pairs)


def test_a_limited_user_names_exactly_one_study_once() -> None:
    assert check_single_study(parse_request(f"studies/{S}/series", [])) == S
    assert check_single_study(parse_request("studies", [("StudyInstanceUID", S)])) == S
    assert check_single_study(parse_request("studies", [])) is None  # filtered search
    for path, pairs, status in (
        (f"studies/{S}/series", [("StudyInstanceUID", S)], 400),
        ("studies", [("StudyInstanceUID", f"{S},{SE}")], 403),
        ("studies", [("StudyInstanceUID", f"{S}\\{SE}")], 403),
        ("series", [], 403),
        ("instances", [("SOPInstanceUID", I)], 403),
    ):
        with pytest.raises(RequestRefused) as refused:
            check_single_study(parse_request(path, pairs))
        assert refused.value.status == status, (path, pairs)
