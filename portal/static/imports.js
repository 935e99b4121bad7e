// The upload page: drag and drop of files and folders, the size limit checked before
// sending, a progress bar while the browser streams the files to the portal. Without
// JavaScript the form still posts to /imports.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  if (form) {
    setUpUpload(form);
  }
  const pending = document.querySelector("[data-refresh]");
  if (pending) {
    // Studies not ingested yet: look again in a few seconds (the page stops asking after a while).
    window.setTimeout(() => window.location.reload(), Number(pending.dataset.refresh) * 1000);
  }

  function setUpUpload(form) {
    const zone = document.getElementById("dropzone");
    const selection = document.getElementById("selection");
    const error = document.getElementById("upload-error");
    const progress = document.getElementById("upload-progress");
    const limit = Number(form.dataset.limitBytes);
    let dropped = []; // {file, path}

    function chosen() {
      const picked = [];
      for (const input of form.querySelectorAll("input[type=file]")) {
        for (const file of input.files) {
          picked.push({ file: file, path: file.webkitRelativePath || file.name });
        }
      }
      return picked.concat(dropped);
    }

    function describe() {
      const files = chosen();
      const bytes = files.reduce((sum, item) => sum + item.file.size, 0);
      selection.textContent = files.length
        ? `${files.length} files, ${(bytes / 1048576).toFixed(1)} MB selected`
        : "";
      return { files: files, bytes: bytes };
    }

    function showError(message) {
      error.textContent = message;
      error.hidden = false;
    }

    form.addEventListener("change", () => {
      error.hidden = true;
      describe();
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", async (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      // Read the entries first: the drop's items are only valid during this event.
      const sources = [...event.dataTransfer.items]
        .filter((item) => item.kind === "file")
        .map((item) => ({
          entry: item.webkitGetAsEntry && item.webkitGetAsEntry(),
          file: item.getAsFile(),
        }));
      for (const source of sources) {
        if (source.entry) {
          dropped = dropped.concat(await readEntry(source.entry));
        } else {
          dropped.push({ file: source.file, path: source.file.name }); // no file system entry
        }
      }
      error.hidden = true;
      describe();
    });

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const { files, bytes } = describe();
      if (!files.length) {
        showError("Choose or drop some files first.");
        return;
      }
      if (bytes > limit) {
        showError(
          `These files are ${(bytes / 1048576).toFixed(1)} MB, more than the limit of ` +
            `${form.dataset.limitMb} MB per upload: import fewer at a time.`
        );
        return;
      }
      const data = new FormData();
      data.append("csrf_token", form.elements.csrf_token.value);
      for (const item of files) {
        data.append("files", item.file, item.path);
      }
      send(data);
    });

    function send(data) {
      const request = new XMLHttpRequest();
      request.open("POST", form.dataset.api);
      request.setRequestHeader("X-CSRFToken", form.elements.csrf_token.value);
      request.responseType = "json";
      progress.hidden = false;
      form.querySelector("button[type=submit]").disabled = true;
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          progress.value = (100 * event.loaded) / event.total;
        }
      });
      request.addEventListener("load", () => {
        if (request.status === 201 && request.response) {
          window.location.assign(`${form.dataset.summary}/${request.response.id}`);
          return;
        }
        const reason = request.response && request.response.error;
        showError(`The upload was refused (HTTP ${request.status}): ${reason || "no reason given"}`);
        form.querySelector("button[type=submit]").disabled = false;
        progress.hidden = true;
      });
      request.addEventListener("error", () => {
        showError("The upload broke off: the portal did not answer.");
        form.querySelector("button[type=submit]").disabled = false;
        progress.hidden = true;
      });
      request.send(data);
    }
  }

  // A dropped file or folder (recursively) as {file, path} items.
  async function readEntry(entry) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      return [{ file: file, path: entry.fullPath.replace(/^\//, "") }];
    }
    const reader = entry.createReader();
    let items = [];
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) {
        return items;
      }
      for (const child of batch) {
        items = items.concat(await readEntry(child));
      }
    }
  }
})();
