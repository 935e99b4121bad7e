"""Sign-in timing and the cost of the session check, through the portal's test client.

On a temporary SQLite database with real bcrypt hashes. Prints:
- the median time of a failed `POST /api/v1/auth/token` for a real and an unknown e-mail,
  with a short password and with one over bcrypt's 72 bytes, and the real/unknown ratio
  (equal time means no user enumeration by timing);
- the median cost of the session check every cookie request pays
  (`portal.security.load_session_user`), against a baseline measured in the same run:
  loading the user row by primary key, what the session-version cookie check it
  replaces did per request.

    .venv/bin/python benchmarks/sign_in.py [--attempts 9] [--checks 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import delete  # noqa: E402

from portal.extensions import db  # noqa: E402
from portal.security import load_session_user  # noqa: E402
from storage.models.accounts import User  # noqa: E402
from storage.models.sign_in import SignInThrottle  # noqa: E402
from tests.support.accounts import PASSWORD, make_portal, sign_in  # noqa: E402

CASES = [
    (email, label, password)
    for email in ("alice@example.org", "nobody@example.org")
    for label, password in (("short", "wrong-pass-1"), ("80 bytes", "é" * 40))
]


def time_sign_ins(app, attempts: int) -> dict[tuple[str, str], float]:
    client = app.test_client()
    timings: dict[tuple[str, str], list[float]] = {(e, label): [] for e, label, _ in CASES}
    for _ in range(attempts):
        for email, label, password in CASES:
            with app.app_context():  # no backoff: each attempt is a first failure
                db.session.execute(delete(SignInThrottle))
                db.session.commit()
            started = time.perf_counter()
            answer = client.post("/api/v1/auth/token", json={"email": email, "password": password})
            timings[(email, label)].append(time.perf_counter() - started)
            assert answer.status_code == 401, answer.json
    return {case: statistics.median(times) for case, times in timings.items()}


def time_session_checks(app, checks: int) -> tuple[float, float]:
    browser = app.test_client()
    sign_in(browser, "alice@example.org", PASSWORD)
    cookie = browser.get_cookie("session").value
    key = app.session_interface.get_signing_serializer(app).loads(cookie)["_user_id"]
    check, baseline = [], []
    with app.test_request_context():
        user_id = load_session_user(key).user_id
        for _ in range(checks):
            started = time.perf_counter()
            load_session_user(key)
            check.append(time.perf_counter() - started)
            db.session.expunge_all()
            started = time.perf_counter()
            db.session.get(User, user_id)
            db.session.commit()
            baseline.append(time.perf_counter() - started)
            db.session.expunge_all()
    return statistics.median(check), statistics.median(baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=9)
    parser.add_argument("--checks", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        app = make_portal(Path(home))
        medians = time_sign_ins(app, args.attempts)
        print(f"failed token requests, median of {args.attempts}:")
        for label in ("short", "80 bytes"):
            real = medians[("alice@example.org", label)]
            unknown = medians[("nobody@example.org", label)]
            print(
                f"  {label:>8} password: real e-mail {real * 1000:7.1f} ms, "
                f"unknown {unknown * 1000:7.1f} ms, ratio {real / unknown:.3f}"
            )
        check, baseline = time_session_checks(app, args.checks)
        print(
            f"session check, median of {args.checks}: {check * 1e6:.0f} us "
            f"(baseline, user row by primary key: {baseline * 1e6:.0f} us, "
            f"ratio {check / baseline:.2f})"
        )


if __name__ == "__main__":
    main()
