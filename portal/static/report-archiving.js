// Signatures still "archiving…": ask the report API until the archive has each SR (the
// portal sends it right after the signature), then show its UID. Backs off, and gives up
// after about a minute: a document the archive did not take stays queued in the outbox.
"use strict";

(function () {
  const list = document.querySelector("ul.signatures[data-api]");
  const DELAYS_MS = [500, 1000, 2000, 4000, 8000, 16000, 30000];

  function pending() {
    return list ? list.querySelectorAll("span.archiving[data-sop]") : [];
  }

  async function check(attempt) {
    if (pending().length === 0) {
      return;
    }
    try {
      const response = await fetch(list.dataset.api, { credentials: "same-origin" });
      if (response.ok) {
        const report = await response.json();
        for (const doc of report.documents) {
          const span = list.querySelector('span.archiving[data-sop="' + doc.sop_instance_uid + '"]');
          if (span && doc.archived) {
            span.className = "archived";
            span.textContent = "archived " + doc.archived_at.slice(0, 16).replace("T", " ") +
              " UTC, SR " + doc.sop_instance_uid;
          }
        }
      }
    } catch (e) {
      // the next attempt will tell
    }
    if (attempt + 1 < DELAYS_MS.length) {
      setTimeout(function () { check(attempt + 1); }, DELAYS_MS[attempt + 1]);
    } else {
      for (const span of pending()) {
        span.textContent = "queued for the archive";
      }
    }
  }

  setTimeout(function () { check(0); }, DELAYS_MS[0]);
})();
