// Keyboard shortcuts of a page. An element with data-key="x" is clicked when x is pressed
// (a link followed, a button pressed); inside the worklist the selected row's own come
// first (rows are data-key-scope). "?" opens the help overlay, Esc leaves a field.
// Single keys never fire while the user types in a field or a dialog is open.
"use strict";

(function () {
  const help = document.getElementById("keys-help");

  function isTyping(element) {
    return Boolean(element && (element.isContentEditable ||
      ["INPUT", "TEXTAREA", "SELECT"].includes(element.tagName)));
  }

  function findTarget(key) {
    const selector = '[data-key="' + CSS.escape(key) + '"]';
    const row = document.querySelector("[data-key-scope].selected");
    const own = row && row.querySelector(selector);
    if (own) { return own; }
    return Array.from(document.querySelectorAll(selector))
      .find(function (element) { return !element.closest("[data-key-scope]"); });
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "Escape" && isTyping(event.target) && !event.target.closest("dialog")) {
      event.target.blur();
      return;
    }
    if (isTyping(event.target) || document.querySelector("dialog[open]")) { return; }
    if (event.key === "?" && help) {
      event.preventDefault();
      help.showModal();
      return;
    }
    const target = findTarget(event.key);
    if (target) {
      event.preventDefault();
      if (isTyping(target)) { target.focus(); } else { target.click(); }
    }
  });
})();
