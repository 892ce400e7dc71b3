// Tabs over the sections of a page ([data-tabs]): links to "#id" show that section and hide the
// other tab panels; links elsewhere are ordinary links. Without this script every section shows.
(function () {
  "use strict";
  function setUp(bar) {
    var links = Array.prototype.slice.call(bar.querySelectorAll("a[data-tab]"));
    var panels = links
      .map(function (link) {
        return document.getElementById(link.getAttribute("data-tab"));
      })
      .filter(Boolean);
    if (!panels.length) {
      return;
    }
    bar.setAttribute("role", "tablist");
    function show(name, focus) {
      links.forEach(function (link) {
        var selected = link.getAttribute("data-tab") === name;
        link.setAttribute("role", "tab");
        link.setAttribute("aria-selected", selected ? "true" : "false");
        link.classList.toggle("active", selected);
        if (selected && focus) {
          link.focus();
        }
      });
      panels.forEach(function (panel) {
        panel.setAttribute("role", "tabpanel");
        panel.hidden = panel.id !== name;
      });
    }
    function fromHash() {
      var wanted = window.location.hash.replace("#", "");
      var owner = wanted && document.getElementById(wanted);
      var panel = owner && owner.closest ? owner.closest(".tab-panel") : null;
      return panel && panels.indexOf(panel) >= 0 ? panel.id : panels[0].id;
    }
    links.forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var name = link.getAttribute("data-tab");
        show(name, false);
        window.history.replaceState(null, "", "#" + name);
      });
    });
    window.addEventListener("hashchange", function () {
      show(fromHash(), false);
    });
    show(fromHash(), false);
  }
  function ready() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-tabs]"), setUp);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
