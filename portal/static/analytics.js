// The turnaround dashboard: fetch the figures for the filters, draw them with Plotly, and
// again whenever a filter changes. Figures come from the server as JSON (data + layout).
(function () {
  "use strict";
  const form = document.getElementById("analytics-filters");
  if (!form) return;
  const plotConfig = { displaylogo: false, displayModeBar: false, responsive: true };
  const breachColumns = ["accession_number", "patient_name", "patient_id", "modality",
    "priority", "institution", "radiologist_email", "received_at_utc", "final_at_utc",
    "received_to_final_minutes", "target_minutes"];
  const showsPatients = document.querySelectorAll("#breaches thead th").length === 11;
  let latest = 0;

  function query() {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (value) params.set(name, value);
    }
    return params.toString();
  }

  function showError(message) {
    const box = document.getElementById("analytics-error");
    box.textContent = message;
    box.hidden = !message;
  }

  function fillBreaches(rows) {
    const body = document.querySelector("#breaches tbody");
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      tr.dataset.studyUid = row.study_instance_uid;
      for (const column of breachColumns) {
        if (!showsPatients && column.startsWith("patient_")) continue;
        const td = document.createElement("td");
        const text = String(row[column] ?? "");
        if (column === "accession_number" && row.url) {
          const link = document.createElement("a");
          link.href = row.url;
          link.textContent = text || row.study_instance_uid;
          td.append(link);
        } else {
          td.textContent = column === "accession_number" ? text || row.study_instance_uid : text;
        }
        tr.append(td);
      }
      body.append(tr);
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 11;
      td.className = "empty";
      td.textContent = "No breaches for these filters.";
      tr.append(td);
      body.append(tr);
    }
  }

  async function load() {
    const params = query();
    const mine = ++latest;
    for (const link of document.querySelectorAll("a.csv")) {
      link.href = link.dataset.base + (params ? "?" + params : "");
    }
    let payload;
    try {
      const response = await fetch(form.dataset.url + "?" + params, {
        headers: { Accept: "application/json" }, credentials: "same-origin" });
      payload = await response.json();
      if (!response.ok) throw new Error(payload.error || response.statusText);
    } catch (error) {
      showError("Could not load the dashboard: " + error.message);
      return;
    }
    if (mine !== latest) return; // a newer request is on its way
    showError("");
    form.elements.from.value = payload.from || "";
    form.elements.to.value = payload.to || "";
    for (const [name, figure] of Object.entries(payload.figures)) {
      const element = document.getElementById("chart-" + name);
      const note = element.querySelector(".chart-empty");
      if (figure.empty) { // no data: say so in words, not with empty axes
        Plotly.purge(element);
        const text = document.createElement("p");
        text.className = "chart-empty";
        text.textContent = figure.empty;
        element.replaceChildren(text);
      } else {
        if (note) note.remove();
        await Plotly.react(element, figure.data, figure.layout, plotConfig);
      }
      element.dataset.draws = String(Number(element.dataset.draws) + 1);
    }
    fillBreaches(payload.breaches);
    document.body.dataset.analyticsLoaded = String(mine);
  }

  form.addEventListener("change", function () {
    history.replaceState(null, "", "?" + query());
    load();
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    history.replaceState(null, "", "?" + query());
    load();
  });
  load();
})();
