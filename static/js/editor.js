// The version editor's checks: the panel never vouches for text it has not checked. Any change
// to the config (typing, a mouse paste, a drop) marks the panel stale at once; it is fresh again
// only when the answer for exactly the text now in the editor has arrived.
(function () {
  "use strict";
  function setUp(editor) {
    var panel = document.getElementById(editor.getAttribute("data-checked-by"));
    if (!panel) {
      return;
    }
    var sent = null;
    editor.addEventListener("input", function () {
      panel.classList.add("check-stale");
    });
    editor.addEventListener("htmx:configRequest", function (event) {
      sent = event.detail.parameters[editor.name];
    });
    document.body.addEventListener("htmx:afterSwap", function (event) {
      if (event.detail.target === panel) {
        panel.classList.toggle("check-stale", sent !== editor.value);
      }
    });
  }
  function ready() {
    Array.prototype.forEach.call(document.querySelectorAll("textarea[data-checked-by]"), setUp);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
