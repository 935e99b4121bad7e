"""The simulated users of `benchmarks/load.py` (a locustfile; locust runs it, not pytest).

Radiologists page and filter the worklist, open study pages and the report editor, save
drafts and sign the studies that arrive during the run; a manager watches the dashboards;
a referrer reads reports. Every request is named by its type, not its URL, so that the
figures come per type. Accounts and the marker of arriving studies come from the
environment `load.py` sets.
"""

from __future__ import annotations

import os
import random
import re

from locust import HttpUser, between, task

PASSWORD = os.environ.get("LOAD_PASSWORD", "")
RADIOLOGISTS = int(os.environ.get("LOAD_RADIOLOGISTS", "1"))
ARRIVING = os.environ.get("LOAD_ARRIVING_PREFIX", "LOAD")  # Patient ID prefix of C-STOREd studies
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
DATA_CSRF = re.compile(r'data-csrf="([^"]+)"')
DATA_ETAG = re.compile(r'data-etag="([^"]*)"')
STUDY_LINK = re.compile(r'href="/studies/([0-9.]+)"')
REPORT_LINK = re.compile(r'href="/studies/([0-9.]+)/report"')
FILTERS = [
    "",
    "status=received&status=in_progress",
    "modality=CT&sort=priority",
    "priority=STAT",
    "q=Ber",
    "assignee=me",
    "status=final&sort=study_date&order=desc",
    "modality=MR&page=3",
]


class SignedIn(HttpUser):
    abstract = True
    wait_time = between(0.5, 2.0)
    email = ""

    def on_start(self) -> None:
        form = self.client.get("/login", name="sign-in form").text
        token = CSRF.search(form).group(1)
        self.client.post(
            "/login",
            data={"email": self.email, "password": PASSWORD, "csrf_token": token},
            name="sign in",
        )


class Radiologist(SignedIn):
    weight = 8

    def on_start(self) -> None:
        self.email = f"radiologist{random.randrange(RADIOLOGISTS):02d}@load.example"
        super().on_start()

    @task(6)
    def page_worklist(self) -> None:
        self.client.get(f"/worklist?{random.choice(FILTERS)}", name="worklist page")

    @task(3)
    def call_worklist_api(self) -> None:
        self.client.get(
            f"/api/v1/studies?{random.choice(FILTERS)}&per_page=50", name="worklist API"
        )

    @task(4)
    def open_study(self) -> None:
        listing = self.client.get("/worklist?status=final", name="worklist page").text
        uids = STUDY_LINK.findall(listing)
        if uids:
            self.client.get(f"/studies/{random.choice(uids)}", name="study page")

    @task(2)
    def report_arriving_study(self) -> None:
        """Open the editor of a study that arrived during the run, save a draft, sign it."""
        listing = self.client.get(
            f"/worklist?status=received&q={ARRIVING}", name="worklist page"
        ).text
        uids = STUDY_LINK.findall(listing)
        if not uids:
            return
        uid = random.choice(uids)
        editor = self.client.get(f"/studies/{uid}/report/edit", name="report editor").text
        csrf, etag = DATA_CSRF.search(editor), DATA_ETAG.search(editor)
        if csrf is None or etag is None:
            return  # signed by someone else since the listing
        headers = {"X-CSRFToken": csrf.group(1), "Accept": "application/json"}
        with self.client.put(
            f"/api/v1/studies/{uid}/report",
            json={"findings": "No acute abnormality.", "impression": "Normal study."},
            headers={**headers, "If-Match": etag.group(1)},
            name="save draft",
            catch_response=True,
        ) as saved:
            if saved.status_code == 409:  # another radiologist got there first: not an error
                saved.success()
                return
        if not saved.ok:
            return
        with self.client.post(
            f"/api/v1/studies/{uid}/report/finalize",
            headers={**headers, "If-Match": saved.headers.get("ETag", "")},
            name="sign final",
            catch_response=True,
        ) as signed:
            if signed.status_code == 409:
                signed.success()


class Manager(SignedIn):
    weight = 1
    email = "manager@load.example"

    @task(2)
    def open_dashboards(self) -> None:
        self.client.get("/analytics", name="dashboards page")

    @task(3)
    def read_dashboard_data(self) -> None:
        self.client.get("/analytics/data.json", name="dashboards data")


class Referrer(SignedIn):
    weight = 1
    email = "referrer@load.example"

    @task
    def read_report(self) -> None:
        listing = self.client.get("/referrals", name="referrals page").text
        uids = REPORT_LINK.findall(listing)
        if uids:
            self.client.get(f"/studies/{random.choice(uids)}/report", name="report page")
