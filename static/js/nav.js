// The top navigation: the Menu button on narrow screens, and one open menu at a time.
(function () {
  "use strict";
  function ready() {
    var topbar = document.querySelector(".topbar");
    if (!topbar) {
      return;
    }
    var toggle = topbar.querySelector(".nav-toggle");
    var menus = Array.prototype.slice.call(topbar.querySelectorAll("details.navmenu"));
    if (toggle) {
      toggle.addEventListener("click", function () {
        var open = topbar.classList.toggle("nav-open");
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      });
    }
    menus.forEach(function (menu) {
      menu.addEventListener("toggle", function () {
        if (menu.open) {
          menus.forEach(function (other) {
            if (other !== menu) {
              other.open = false;
            }
          });
        }
      });
    });
    function closeMenus() {
      menus.forEach(function (menu) {
        menu.open = false;
      });
    }
    document.addEventListener("click", function (event) {
      if (!event.target.closest || !event.target.closest("details.navmenu")) {
        closeMenus();
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        closeMenus();
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
