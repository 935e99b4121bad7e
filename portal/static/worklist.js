// The worklist from the keyboard (j/k or the arrows move the selection, Enter opens; the
// row's own keys are data-key attributes, see keys.js) and kept current: every few seconds
// it asks /worklist/changes, with the page's ETag, whether this very page (same filters,
// sort and page number) changed; only then it fetches the page again and swaps the table
// in, keeping the filters, the page and the selected study.
"use strict";

(function () {
  const SELECTED = "pacs.worklist.selected";
  const live = document.getElementById("worklist-live");
  const news = document.getElementById("worklist-news");
  let table = live.querySelector("table.worklist");
  const pollMs = Number(table.dataset.pollSeconds) * 1000;
  const changesUrl = table.dataset.changesUrl;

  function rows() {
    return Array.from(live.querySelectorAll("tr[data-study-uid]"));
  }

  function select(row, focus) {
    rows().forEach(function (other) {
      other.classList.remove("selected");
      other.removeAttribute("aria-current");
    });
    if (!row) { return; }
    row.classList.add("selected");
    row.setAttribute("aria-current", "true");
    sessionStorage.setItem(SELECTED, row.dataset.studyUid);
    if (focus) {
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function selectedRow() {
    return live.querySelector("tr[data-study-uid].selected");
  }

  function restoreSelection(uid, focus, index) {
    const all = rows();
    const row = all.find(function (r) { return r.dataset.studyUid === uid; }) ||
      all[Math.min(index || 0, all.length - 1)];
    select(row, focus);
  }

  function move(step) {
    const all = rows();
    const index = all.indexOf(selectedRow());
    const next = all[Math.max(0, Math.min(all.length - 1, index + step))];
    if (next) { select(next, true); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) { return; }
    const target = event.target;
    if (target.closest("input, textarea, select, [contenteditable], dialog") ||
        document.querySelector("dialog[open]")) { return; }
    if (event.key === "j" || event.key === "ArrowDown") {
      event.preventDefault();
      move(1);
    } else if (event.key === "k" || event.key === "ArrowUp") {
      event.preventDefault();
      move(-1);
    } else if (event.key === "Enter" && (target === document.body || target.matches("tr[data-study-uid]"))) {
      const link = selectedRow() && selectedRow().querySelector('[data-key="o"]');
      if (link) {
        event.preventDefault();
        link.click();
      }
    }
  });

  live.addEventListener("click", function (event) {
    const row = event.target.closest("tr[data-study-uid]");
    if (row) { select(row, false); }
  });

  async function refresh() {
    const response = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok || response.redirected) { return; }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html")
      .getElementById("worklist-live");
    if (!fresh) { return; }
    const before = new Set(rows().map(function (r) { return r.dataset.studyUid; }));
    const current = selectedRow();
    const hadFocus = Boolean(current && live.contains(document.activeElement));
    const index = current ? rows().indexOf(current) : 0;
    live.replaceChildren(...fresh.childNodes);
    table = live.querySelector("table.worklist");
    restoreSelection(current ? current.dataset.studyUid : null, hadFocus, index);
    const added = rows().filter(function (r) { return !before.has(r.dataset.studyUid); });
    added.forEach(function (r) { r.classList.add("fresh"); });
    news.textContent = added.length
      ? added.length + (added.length === 1 ? " new study" : " new studies") + " on this page."
      : "The worklist was updated.";
  }

  async function poll() {
    if (document.visibilityState === "hidden") { return; }
    try {
      const response = await fetch(changesUrl + location.search, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Accept": "application/json", "If-None-Match": '"' + table.dataset.etag + '"' },
      });
      if (response.status === 200) {
        const body = await response.json();
        if (body.etag !== table.dataset.etag) { await refresh(); }
      }
    } catch (e) {
      // The portal did not answer (restarting, offline): the next poll tries again.
    }
  }

  restoreSelection(sessionStorage.getItem(SELECTED), false, 0);
  let polling = false;
  setInterval(async function () {
    if (polling) { return; }
    polling = true;
    try { await poll(); } finally { polling = false; }
  }, pollMs);
})();
