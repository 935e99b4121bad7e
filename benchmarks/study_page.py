"""The study page and study API with many series: is their time flat with the series count?

Fills a fresh database (temporary PACS_HOME) with one study of 2 series (the baseline) and
one of `--series` series (default 200, each of 15 images, as a big multi-phase study), each
with its evidence (one row per image) and a dozen events, then measures server-side (Flask
test client, no network), alternating the two studies:

- `GET /studies/<uid>` (the page, signed in as a radiologist through the form),
- `GET /api/v1/studies/<uid>` (bearer token),

and prints p50/p95 in ms per study and the big/baseline ratio of the p50s, with the page's
size. The previews are separate lazy requests (`loading="lazy"`), one per series in view.

    .venv/bin/python benchmarks/study_page.py [--series 200] [--runs 50]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from config.settings import load_settings  # noqa: E402
from core.accounts import Role  # noqa: E402
from core.evidence import EvidenceInstance, StudyHeader  # noqa: E402
from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from storage.accounts import create_user  # noqa: E402
from storage.evidence import save_evidence  # noqa: E402
from storage.models.studies import Series, StudyEvent  # noqa: E402
from tests.support.apps import make_study  # noqa: E402
from tests.support.services import make_env  # noqa: E402
from tests.support.users import NOW, PASSWORD, sign_in, token_for  # noqa: E402

IMAGES_PER_SERIES = 15


def add_study(index: int, series: int) -> str:
    """A study of `series` CT series with their evidence and events; its UID."""
    study = make_study(
        index, series_count=series, instance_count=series * IMAGES_PER_SERIES, warnings=[]
    )
    uid = study.study_instance_uid
    study.series = [
        Series(
            series_instance_uid=f"{uid}.{number}",
            modality="CT",
            series_number=number,
            description=f"Phase {number}",
            body_part="CHEST",
            instance_count=IMAGES_PER_SERIES,
        )
        for number in range(1, series + 1)
    ]
    study.events = [
        StudyEvent(at=NOW - datetime.timedelta(minutes=m), kind="received") for m in range(12)
    ]
    db.session.add(study)
    db.session.flush()
    evidence = [
        EvidenceInstance(f"{uid}.{number}", f"{uid}.{number}.{image}", "1.2.840.10008.5.1.4.1.1.2")
        for number in range(1, series + 1)
        for image in range(1, IMAGES_PER_SERIES + 1)
    ]
    save_evidence(db.session, study.id, StudyHeader(study_instance_uid=uid), evidence)
    return uid


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacs-study-page-") as home:
        settings = load_settings(make_env(Path(home)))
        app = create_app({"PACS_SETTINGS": settings})
        with app.app_context():
            create_user(db.session, "radiologist@example.org", PASSWORD, Role.RADIOLOGIST, NOW)
            uids = {"2 series": add_study(0, 2), f"{args.series} series": add_study(1, args.series)}
            db.session.commit()
        page_client, api_client = app.test_client(), app.test_client()
        sign_in(page_client, "radiologist")
        bearer = token_for(api_client, "radiologist")
        timings: dict[tuple[str, str], list[float]] = {}
        sizes: dict[str, int] = {}
        for run in range(args.runs + 2):  # the first two warm up
            for label, uid in uids.items():
                for kind, client, url, headers in (
                    ("page", page_client, f"/studies/{uid}", {}),
                    ("API", api_client, f"/api/v1/studies/{uid}", bearer),
                ):
                    started = time.perf_counter()
                    response = client.get(url, headers=headers)
                    seconds = time.perf_counter() - started
                    assert response.status_code == 200, (kind, response.status_code)
                    if run >= 2:
                        timings.setdefault((kind, label), []).append(seconds * 1000)
                    if kind == "page":
                        sizes[label] = len(response.data)
    print(f"study page and API, {args.runs} runs each (Flask test client, SQLite)")
    labels = list(uids)
    for kind in ("page", "API"):
        for label in labels:
            values = timings[(kind, label)]
            extra = f", page {sizes[label] / 1024:.0f} KiB" if kind == "page" else ""
            print(
                f"  {kind:<4} {label:<12} p50 {statistics.median(values):6.1f} ms, "
                f"p95 {percentile(values, 0.95):6.1f} ms{extra}"
            )
        ratio = statistics.median(timings[(kind, labels[1])]) / statistics.median(
            timings[(kind, labels[0])]
        )
        print(f"  {kind:<4} ratio {labels[1]} / {labels[0]} (p50): {ratio:.2f}")
    print(f"  load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
