"""Peer review: the scoring rules, the random sample, who sees what, the discussion queue."""

from __future__ import annotations

import dataclasses
import datetime
from collections import Counter

import pytest
from flask import Flask
from sqlalchemy import delete, select

from config.settings import load_settings
from core.accounts import Role
from core.peer_review import (
    PeerReviewError,
    Score,
    check_may_score,
    discrepancy_rate,
    draw_sample,
    parse_period,
    parse_score,
)
from portal.extensions import db
from storage.accounts import create_user
from storage.database import open_session
from storage.models.accounts import AuditEvent
from storage.models.peer_review import PeerReview
from storage.models.studies import Study
from tests.support.apps import make_study
from tests.support.peer_review import add_final_report
from tests.support.services import make_env, run_pacs
from tests.support.users import NOW, PASSWORD, sign_in, token_for

T0 = datetime.datetime(2026, 10, 5, 9, 0)

# --- the rules, without a database -------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "2a", "2B", " 3b ", "4a", "4b"])
def test_radpeer_scores_are_accepted(text: str) -> None:
    assert parse_score(text) == Score(text.strip().lower())


@pytest.mark.parametrize("text", ["", "0", "1a", "2", "3", "3c", "5a", "4bb", None, "<script>"])
def test_other_scores_are_refused(text: object) -> None:
    with pytest.raises(PeerReviewError) as refused:
        parse_score(text)
    assert refused.value.status == 422


def rule(**changes: object) -> None:
    values = dict(
        reviewer_id=1,
        reviewer_is_radiologist=True,
        report_is_final=True,
        reported_by_id=2,
        already_scored=False,
    )
    check_may_score(**{**values, **changes})


def test_a_colleagues_final_report_may_be_scored_once() -> None:
    rule()
    refusals = {
        "own report": dict(reported_by_id=1),
        "not final": dict(report_is_final=False),
        "second score": dict(already_scored=True),
        "not a radiologist": dict(reviewer_is_radiologist=False),
        "unknown radiologist": dict(reported_by_id=None),
    }
    statuses = {}
    for name, changes in refusals.items():
        with pytest.raises(PeerReviewError) as refused:
            rule(**changes)
        statuses[name] = refused.value.status
    assert statuses == {
        "own report": 403,
        "not final": 409,
        "second score": 409,
        "not a radiologist": 403,
        "unknown radiologist": 409,
    }


@pytest.mark.parametrize("text", ["2026-13", "26-01", "2026-1", "", "2026-01-01", "x"])
def test_a_period_is_a_month(text: str) -> None:
    with pytest.raises(PeerReviewError):
        parse_period(text)
    assert parse_period("2026-02") == "2026-02"


def test_discrepancy_rate_counts_every_score_but_agreement() -> None:
    assert discrepancy_rate({"1": 6, "2a": 2, "3b": 2}) == 0.4
    assert discrepancy_rate({}) == 0.0


REPORTS = {author: list(range(author * 100, author * 100 + 20)) for author in range(1, 6)}


def test_the_random_sample_is_reproducible_with_its_seed() -> None:
    first = draw_sample(REPORTS, [1, 2, 3, 4, 5], 3, "2026-11 seed")
    shuffled = {key: list(reversed(value)) for key, value in reversed(REPORTS.items())}
    assert draw_sample(shuffled, [5, 3, 1, 2, 4], 3, "2026-11 seed") == first
    assert draw_sample(REPORTS, [1, 2, 3, 4, 5], 3, "another seed") != first


def test_the_random_sample_is_fair_across_radiologists() -> None:
    assignments = draw_sample(REPORTS, [1, 2, 3, 4, 5], 3, "fair")
    drawn = Counter(a.reviewee_id for a in assignments)
    assert drawn == {author: 3 for author in REPORTS}  # the same number of each author's
    load = Counter(a.reviewer_id for a in assignments)
    assert max(load.values()) - min(load.values()) <= 1  # and of reviews for each reviewer
    assert all(a.reviewer_id != a.reviewee_id for a in assignments)
    assert all(a.report_id in REPORTS[a.reviewee_id] for a in assignments)
    # Over many seeds, every report of an author is as likely to be drawn as another.
    counts = Counter(
        a.report_id for seed in range(400) for a in draw_sample(REPORTS, [1, 2], 2, str(seed))
    )
    author_one = [counts[report] for report in REPORTS[1]]
    assert min(author_one) > 0.5 * max(author_one)


def test_a_radiologist_with_fewer_reports_than_the_sample_has_them_all_drawn() -> None:
    assignments = draw_sample({1: [10, 11], 2: list(range(20, 40))}, [1, 2, 3], 5, "s")
    assert Counter(a.reviewee_id for a in assignments) == {1: 2, 2: 5}
    assert draw_sample({1: [10]}, [1], 5, "s") == []  # nobody else to review it


# --- in the portal -------------------------------------------------------------------------


def study(index: int) -> Study:
    return db.session.scalar(
        select(Study).where(Study.study_instance_uid == f"1.2.826.0.1.3680043.10.{index + 1}")
    )


def uid(index: int) -> str:
    return f"1.2.826.0.1.3680043.10.{index + 1}"


@pytest.fixture
def peer_app(app: Flask) -> Flask:
    """Patient PEER-1: study 0 (oldest) reported by second@, study 1 by radiologist@, study 2
    being read now; study 3 of another patient reported by second@; study 4 of PEER-1, a draft."""
    with app.app_context():
        for index, days in ((0, 0), (1, 10), (2, 20), (4, 5)):
            study(index).patient_id = "PEER-1"
            study(index).study_datetime = T0 + datetime.timedelta(days=days)
        add_final_report(db.session, study(0), "second@example.org", NOW)
        add_final_report(db.session, study(1), "radiologist@example.org", NOW)
        add_final_report(db.session, study(3), "second@example.org", NOW)
        db.session.commit()
    return app


def score(client, headers, index: int, value: str, context: int | None = 2, **extra):
    body = {"study_uid": uid(index), "score": value, "comment": "missed nodule", **extra}
    if context is not None:
        body["context_study_uid"] = uid(context)
    return client.post("/api/v1/peer-reviews", json=body, headers=headers)


def test_a_radiologist_scores_a_colleagues_prior_once_and_never_their_own(peer_app) -> None:
    client = peer_app.test_client()
    me = token_for(client, "radiologist")
    done = score(client, me, 0, "2a")
    assert done.status_code == 201, done.json
    assert done.json["score"] == "2a" and done.json["radiologist"] == "second@example.org"
    assert done.json["discussion"] is None
    assert score(client, me, 0, "1").status_code == 409  # one score per reviewer and report
    assert score(client, me, 1, "1").status_code == 403  # their own report
    assert score(client, me, 3, "1").status_code == 403  # not a prior of what they read
    assert score(client, me, 3, "1", context=None).status_code == 403  # nor assigned
    assert score(client, me, 4, "1").status_code == 409  # not final
    assert score(client, me, 0, "5a").status_code == 422
    assert score(client, me, 0, "1", surprise=1).status_code == 422
    nobody = {"study_uid": "1.2.3.999", "score": "1", "context_study_uid": uid(2)}
    assert client.post("/api/v1/peer-reviews", json=nobody, headers=me).status_code == 404
    for role in ("admin", "manager", "referrer", "researcher"):
        assert score(client, token_for(client, role), 0, "1").status_code == 403, role
    with peer_app.app_context():
        assert db.session.scalar(select(PeerReview.score)) == "2a"
        outcomes = Counter(
            db.session.scalars(
                select(AuditEvent.outcome).where(AuditEvent.action == "peer_review_score")
            )
        )
        assert outcomes == {"success": 1, "denied": 7}


def test_the_study_page_offers_colleagues_priors_to_score(peer_app) -> None:
    client = peer_app.test_client()
    sign_in(client, "radiologist")
    page = client.get(f"/studies/{uid(2)}").get_data(as_text=True)
    assert "Priors reported by colleagues" in page
    assert f'data-peer-prior-uid="{uid(0)}"' in page
    assert f'data-peer-prior-uid="{uid(1)}"' not in page  # their own
    assert f'data-peer-prior-uid="{uid(4)}"' not in page  # no final report
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    form = {
        "csrf_token": token,
        "study_uid": uid(0),
        "context_study_uid": uid(2),
        "score": "3b",
        "comment": "should have been seen",
        "next": f"/studies/{uid(2)}",
    }
    done = client.post("/peer-review/score", data=form)
    assert done.status_code == 302 and done.headers["Location"].endswith(uid(2))
    page = client.get(f"/studies/{uid(2)}").get_data(as_text=True)
    assert "scored 3b" in page
    # An off-site `next` is not followed.
    form["next"] = "//evil.example/"
    assert client.post("/peer-review/score", data=form).headers["Location"] == "/peer-review"


def test_reviewers_are_shown_to_admins_only_unless_the_setting_reveals_them(peer_app) -> None:
    client = peer_app.test_client()
    assert score(client, token_for(client, "radiologist"), 0, "2b").status_code == 201
    with peer_app.app_context():
        create_user(db.session, "third@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
        db.session.commit()

    def seen_by(role: str) -> list[dict]:
        response = client.get("/api/v1/peer-reviews", headers=token_for(client, role))
        assert response.status_code == 200, (role, response.json)
        return response.json["items"]

    assert [r["reviewer"] for r in seen_by("admin")] == ["radiologist@example.org"]
    assert [r["reviewer"] for r in seen_by("second")] == [None]  # the reviewed radiologist
    assert seen_by("second")[0]["comment"] == "missed nodule"
    assert [r["reviewer"] for r in seen_by("radiologist")] == ["radiologist@example.org"]
    assert seen_by("third") == []  # not theirs
    for role in ("manager", "referrer", "researcher"):
        headers = token_for(client, role)
        assert client.get("/api/v1/peer-reviews", headers=headers).status_code == 403
    # The pages say the same.
    pages = {}
    for role in ("admin", "second", "third"):
        browser = peer_app.test_client()
        sign_in(browser, role)
        pages[role] = browser.get("/peer-review").get_data(as_text=True)
    assert '<td class="reviewer">radiologist@example.org</td>' in pages["admin"]
    assert '<td class="reviewer">hidden</td>' in pages["second"]
    assert "radiologist@example.org" not in pages["second"].split("</header>")[1]
    assert "No reviews." in pages["third"] and "missed nodule" not in pages["third"]
    settings = peer_app.config["PACS_SETTINGS"]
    peer_app.config["PACS_SETTINGS"] = dataclasses.replace(
        settings, peer_review_reveal_reviewers=True
    )
    assert [r["reviewer"] for r in seen_by("second")] == ["radiologist@example.org"]


def test_managers_see_aggregates_without_text(peer_app) -> None:
    client = peer_app.test_client()
    me = token_for(client, "radiologist")
    assert score(client, me, 0, "3b").status_code == 201
    manager = token_for(client, "manager")
    figures = client.get("/api/v1/analytics/peer-review", headers=manager)
    assert figures.status_code == 200
    assert figures.json["by_radiologist"] == [
        {
            "group": "second@example.org",
            "reviews": 1,
            "scores": {"1": 0, "2a": 0, "2b": 0, "3a": 0, "3b": 1, "4a": 0, "4b": 0},
            "discrepancy_rate": 1.0,
        }
    ]
    assert [row["group"] for row in figures.json["by_modality"]] == [study_modality(peer_app, 0)]
    assert figures.json["open_discussions"] == 1
    text = figures.get_data(as_text=True)
    assert "missed nodule" not in text and "radiologist@example.org" not in text
    sign_in(client, "manager")
    page = client.get("/analytics/peer-review").get_data(as_text=True)
    assert "second@example.org" in page and "100.0 %" in page
    assert "missed nodule" not in page and "Secret" not in page
    for role in ("radiologist", "referrer", "researcher"):
        headers = token_for(client, role)
        assert client.get("/api/v1/analytics/peer-review", headers=headers).status_code == 403


def study_modality(app: Flask, index: int) -> str:
    with app.app_context():
        return study(index).modality


def test_3b_and_4b_go_to_the_discussion_queue_with_an_outcome(peer_app) -> None:
    client = peer_app.test_client()
    review = score(client, token_for(client, "radiologist"), 0, "4b").json
    assert review["discussion"] == "open"
    admin = token_for(client, "admin")
    queue = client.get("/api/v1/peer-reviews?discussion=open", headers=admin).json["items"]
    assert [item["id"] for item in queue] == [review["id"]]
    url = f"/api/v1/peer-reviews/{review['id']}/outcome"
    radiologist = token_for(client, "radiologist")
    assert client.post(url, json={"outcome": "upheld"}, headers=radiologist).status_code == 403
    assert client.post(url, json={"outcome": "maybe"}, headers=admin).status_code == 422
    bad_score = {"outcome": "revised", "revised_score": "9"}
    assert client.post(url, json=bad_score, headers=admin).status_code == 422
    revised = {"outcome": "revised", "revised_score": "3a", "note": "discussed 2026-11-20"}
    done = client.post(url, json=revised, headers=admin)
    assert done.status_code == 200, done.json
    assert (done.json["discussion"], done.json["outcome_score"]) == ("closed", "3a")
    assert client.post(url, json=revised, headers=admin).status_code == 409  # decided already
    assert client.get("/api/v1/peer-reviews?discussion=open", headers=admin).json["items"] == []
    assert (
        client.post("/api/v1/peer-reviews/999/outcome", json=revised, headers=admin).status_code
        == 404
    )
    # The reviewed radiologist sees the outcome; the admins' page lists the decision.
    mine = client.get("/api/v1/peer-reviews", headers=token_for(client, "second")).json["items"]
    assert mine[0]["outcome"] == "revised"
    sign_in(client, "admin")
    page = client.get("/peer-review/discussions").get_data(as_text=True)
    assert "discussed 2026-11-20" in page
    # Scores below 3b never enter the queue.
    assert score(client, token_for(client, "radiologist"), 3, "3a", context=None).status_code == 403


def test_admins_assign_a_reproducible_random_sample_and_a_chosen_study(peer_app) -> None:
    with peer_app.app_context():
        create_user(db.session, "third@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
        for index in range(5, 25):
            signer = ("radiologist", "second", "third")[index % 3]
            signed = datetime.datetime(2026, 11, 1 + index, 10, tzinfo=datetime.UTC)
            add_final_report(db.session, study(index), f"{signer}@example.org", signed)
        october = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC)  # outside the sample
        add_final_report(db.session, study(26), "second@example.org", october)
        db.session.commit()
    client = peer_app.test_client()
    admin = token_for(client, "admin")
    body = {"period": "2026-11", "seed": "november", "per_radiologist": 3}
    first = client.post("/api/v1/peer-reviews/assignments", json=body, headers=admin)
    assert first.status_code == 201, first.json
    assert first.json["seed"] == "november"
    pairs = sorted((item["study_uid"], item["reviewer"]) for item in first.json["items"])
    assert Counter(item["radiologist"] for item in first.json["items"]) == {
        "radiologist@example.org": 3,
        "second@example.org": 3,
        "third@example.org": 3,
    }
    assert all(item["reviewer"] != item["radiologist"] for item in first.json["items"])
    # The same seed again adds nothing; on a clean slate it draws the same sample.
    again = client.post("/api/v1/peer-reviews/assignments", json=body, headers=admin)
    assert again.json["items"] == []
    with peer_app.app_context():
        db.session.execute(delete(PeerReview))
        db.session.commit()
    redo = client.post("/api/v1/peer-reviews/assignments", json=body, headers=admin).json
    assert sorted((item["study_uid"], item["reviewer"]) for item in redo["items"]) == pairs
    # Without a seed one is made up and returned, so the draw can be repeated.
    with peer_app.app_context():
        db.session.execute(delete(PeerReview))
        db.session.commit()
    drawn = client.post(
        "/api/v1/peer-reviews/assignments", json={"period": "2026-11"}, headers=admin
    ).json
    assert len(drawn["seed"]) == 16
    # The assigned reviewer scores without reading a later study.
    mine = next(i for i in drawn["items"] if i["reviewer"] == "radiologist@example.org")
    browser = peer_app.test_client()
    sign_in(browser, "radiologist")
    page = browser.get("/peer-review").get_data(as_text=True)
    assert f'name="study_uid" value="{mine["study_uid"]}"' in page  # a score form for it
    headers = token_for(client, "radiologist")
    body = {"study_uid": mine["study_uid"], "score": "1"}
    assert client.post("/api/v1/peer-reviews", json=body, headers=headers).status_code == 201
    # A chosen study, to a chosen radiologist; never to its own author.
    chosen = {"study_uid": uid(26), "reviewer": "radiologist@example.org"}
    done = client.post("/api/v1/peer-reviews/assignments", json=chosen, headers=admin)
    assert done.status_code == 201 and done.json["items"][0]["source"] == "assigned"
    assert (
        client.post("/api/v1/peer-reviews/assignments", json=chosen, headers=admin).status_code
        == 409
    )
    own = {"study_uid": uid(26), "reviewer": "second@example.org"}
    assert (
        client.post("/api/v1/peer-reviews/assignments", json=own, headers=admin).status_code == 403
    )
    nobody = {"study_uid": uid(3), "reviewer": "manager@example.org"}
    assert (
        client.post("/api/v1/peer-reviews/assignments", json=nobody, headers=admin).status_code
        == 422
    )
    for bad in ({"period": "2026-13"}, {"period": "2026-11", "per_radiologist": 101}):
        response = client.post("/api/v1/peer-reviews/assignments", json=bad, headers=admin)
        assert response.status_code == 422, bad
    radiologist = token_for(client, "radiologist")
    assert (
        client.post("/api/v1/peer-reviews/assignments", json=body, headers=radiologist).status_code
        == 403
    )
    with peer_app.app_context():
        details = list(
            db.session.scalars(
                select(AuditEvent.detail).where(
                    AuditEvent.action == "peer_review_assign", AuditEvent.outcome == "success"
                )
            )
        )
    assert any("seed=november per_radiologist=3" in detail for detail in details)


def list_pairs(session) -> list[tuple[int, int]]:
    return sorted((r.report_id, r.reviewer_id) for r in session.scalars(select(PeerReview)))


def test_pacs_peer_review_assign_draws_the_same_sample_from_the_same_seed(tmp_path) -> None:
    env = make_env(tmp_path)
    url = load_settings(env).database_url
    with open_session(url) as session:
        for name, role in (("admin", Role.ADMIN), ("a", Role.RADIOLOGIST), ("b", Role.RADIOLOGIST)):
            create_user(session, f"{name}@example.org", PASSWORD, role, NOW)
        session.flush()
        for index in range(8):
            session.add(make_study(index))
            session.flush()
            add_final_report(
                session,
                session.scalars(select(Study)).all()[-1],
                f"{'ab'[index % 2]}@example.org",
                NOW,
            )
    args = ("peer-review", "assign", "--month", "2026-11", "--by", "admin@example.org")
    first = run_pacs(env, *args, "--seed", "s1", "--per-radiologist", "2")
    assert first.returncode == 0, first.stderr
    assert first.stdout.endswith("4 reviews assigned for 2026-11 (seed s1)\n")
    with open_session(url) as session:
        drawn = list_pairs(session)
        session.execute(delete(PeerReview))
    again = run_pacs(env, *args, "--seed", "s1", "--per-radiologist", "2")
    assert again.stdout == first.stdout
    with open_session(url) as session:
        assert (
            sorted((r.report_id, r.reviewer_id) for r in session.scalars(select(PeerReview)))
            == drawn
        )
    for bad, reason in (
        (("--month", "2026-13"), "is not a month written YYYY-MM"),
        (("--by", "a@example.org"), "is not an active admin"),
        (("--per-radiologist", "101"), "between 0 and 100"),
    ):
        values = dict(zip(args[2::2], args[3::2], strict=True)) | dict([bad])
        refused = run_pacs(env, "peer-review", "assign", *[x for kv in values.items() for x in kv])
        assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
