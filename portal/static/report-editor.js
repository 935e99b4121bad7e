// The report editor: autosave (every few seconds and on leaving the page) with the
// report's ETag, so a second tab or a second radiologist gets a clear conflict instead
// of silently overwriting; templates pre-fill the sections; signing asks for confirmation.
// Keys: Ctrl+S saves now, Ctrl+Enter is "Sign and next" (the next unread study of the list
// the editor was opened from: its URL carries the list's filters, see keys.js for the rest).
"use strict";

(function () {
  const SAVE_EVERY_MS = 3000;
  const message = document.getElementById("report-message");
  const dialog = document.getElementById("confirm-dialog");
  const templates = JSON.parse(document.getElementById("report-templates").textContent);

  function showError(text) {
    message.textContent = text;
    message.hidden = false;
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return body.error || response.statusText;
    } catch (e) {
      return response.status + " " + response.statusText;
    }
  }

  function confirmSigning(text, buttonLabel, offerCritical) {
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("critical-choice").hidden = !offerCritical;
    document.getElementById("critical-category").value = "";
    document.getElementById("confirm-button").textContent = buttonLabel;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function () {
        resolve(dialog.returnValue === "confirm");
      }, { once: true });
    });
  }

  function request(form, method, path, body, extraHeaders) {
    return fetch(form.dataset.api + path, {
      method: method,
      credentials: "same-origin",
      headers: Object.assign({
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": form.dataset.csrf,
      }, extraHeaders || {}),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  const form = document.getElementById("report-form");
  if (form) {
    const status = document.getElementById("save-status");
    const select = document.getElementById("template-select");
    const fields = Array.from(form.querySelectorAll("textarea[data-section]"));
    let etag = form.dataset.etag;
    let templateKey = form.dataset.template || "";
    let dirty = false;
    let saving = null;
    let conflict = false;

    function markDirty() {
      dirty = true;
      status.textContent = "Unsaved changes";
    }

    function draft() {
      const body = {};
      fields.forEach(function (field) { body[field.dataset.section] = field.value; });
      if (templateKey) { body.template_key = templateKey; }
      return body;
    }

    async function saveNow(leaving) {
      if (!dirty || conflict) { return !conflict; }
      dirty = false;
      status.textContent = "Saving…";
      let response;
      try {
        response = await fetch(form.dataset.api, {
          method: "PUT",
          credentials: "same-origin",
          keepalive: Boolean(leaving),
          headers: {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-CSRFToken": form.dataset.csrf,
            "If-Match": etag,
          },
          body: JSON.stringify(draft()),
        });
      } catch (e) {
        dirty = true;
        status.textContent = "Not saved: the portal did not answer; retrying";
        return false;
      }
      if (response.ok) {
        etag = response.headers.get("ETag");
        const report = await response.json();
        status.textContent = "Saved at " + new Date().toLocaleTimeString() + " (version " + report.version + ")";
        document.getElementById("report-status").textContent = report.status.toUpperCase();
        form.dataset.version = report.version;
        return true;
      }
      dirty = true;
      const text = await errorText(response);
      if (response.status === 409 || response.status === 428) {
        conflict = true;
        status.textContent = "Not saved";
        showError("Not saved: " + text + ". Copy your text, then reload the page.");
      } else {
        status.textContent = "Not saved";
        showError("Not saved: " + text);
      }
      return false;
    }

    function save(leaving) {
      if (saving) { return saving; }
      saving = saveNow(leaving).finally(function () { saving = null; });
      return saving;
    }

    fields.forEach(function (field) { field.addEventListener("input", markDirty); });
    select.addEventListener("change", function () {
      const chosen = templates[select.value];
      if (!chosen) { return; }
      templateKey = select.value;
      fields.forEach(function (field) { field.value = chosen.sections[field.dataset.section] || ""; });
      markDirty();
      save(false);
    });
    // Compare with a prior: the viewer opens both, and the comparison line names the prior
    // (replacing the template's placeholder, else added on a line of its own; editable).
    const comparison = form.querySelector("textarea[data-section=comparison]");
    document.querySelectorAll("a[data-comparison]").forEach(function (link) {
      link.addEventListener("click", function () {
        const line = link.dataset.comparison;
        const current = comparison.value.trim();
        if (current.includes(line)) { return; }
        comparison.value = (!current || current === "None available.") ? line : current + "\n" + line;
        markDirty();
        save(false);
      });
    });
    setInterval(function () { save(false); }, SAVE_EVERY_MS);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") { save(true); }
    });
    window.addEventListener("pagehide", function () { save(true); });

    form.querySelectorAll("button[data-sign]").forEach(function (button) {
      button.addEventListener("click", async function () {
        const final = button.dataset.sign === "final";
        const ok = await confirmSigning(
          final ? "Sign this report as FINAL? A final report cannot be changed afterwards; corrections become addenda."
                : "Sign this report as PRELIMINARY? It will be archived and visible as preliminary.",
          final ? "Sign final" : "Sign preliminary", true);
        if (!ok) { return; }
        if (!(await save(false))) { return; }
        const critical = document.getElementById("critical-category").value;
        const response = await request(form, "POST", final ? "/finalize" : "/preliminary",
                                       critical ? { critical: critical } : undefined,
                                       { "If-Match": etag });
        if (!response.ok) {
          showError("Not signed: " + (await errorText(response)));
        } else if (button.dataset.then === "next") {
          window.location.assign(form.dataset.next);
        } else {
          window.location.reload();
        }
      });
    });

    document.addEventListener("keydown", function (event) {
      if (!(event.ctrlKey || event.metaKey) || event.altKey || document.querySelector("dialog[open]")) {
        return;
      }
      if (event.key === "s" || event.key === "S") {
        event.preventDefault();
        save(false);
      } else if (event.key === "Enter") {
        const signNext = document.getElementById("sign-next");
        if (signNext) {
          event.preventDefault();
          signNext.click();
        }
      }
    });
  }

  const addendumForm = document.getElementById("addendum-form");
  if (addendumForm) {
    addendumForm.querySelector("button[data-sign]").addEventListener("click", async function () {
      const text = document.getElementById("addendum-text").value;
      if (!text.trim()) { showError("Write the addendum first."); return; }
      if (!(await confirmSigning("Sign this addendum? It is added to the final report for good.", "Sign addendum"))) {
        return;
      }
      const response = await request(addendumForm, "POST", "/addenda", { text: text });
      if (response.ok) {
        window.location.reload();
      } else {
        showError("Addendum not signed: " + (await errorText(response)));
      }
    });
  }
})();
