// The version editor's checks: the panel never vouches for text it has not checked. Any change
// to the config (typing, a mouse paste, a drop, an edit in the structured form) marks the panel
// stale at once; it is fresh again only when the answer for exactly the text now in the editor
// has arrived. A fresh answer's issues are marked at their lines in the text (a gutter beside
// the text, a band over the line, the caret line's messages under it) and handed to the
// structured form (editor-form.js) as an "editor:checked" event on the textarea.
(function () {
  "use strict";

  function readIssues(panel) {
    return Array.prototype.map.call(panel.querySelectorAll("li[data-severity]"), function (item) {
      var message = item.querySelector(".issue-message") || item;
      return {
        path: item.getAttribute("data-path") || "",
        line: Number(item.getAttribute("data-line")) || null,
        severity: item.getAttribute("data-severity"),
        message: message.textContent.trim(),
        item: item
      };
    });
  }

  function lineCount(text) {
    return text.split("\n").length;
  }

  // Line numbers beside the text and a band over each line that has an issue.
  function LineMarks(editor) {
    this.editor = editor;
    this.frame = document.createElement("div");
    this.frame.className = "code-frame";
    this.gutter = document.createElement("div");
    this.gutter.className = "code-gutter";
    this.gutter.setAttribute("aria-hidden", "true");
    this.bands = document.createElement("div");
    this.bands.className = "code-bands";
    this.bands.setAttribute("aria-hidden", "true");
    this.status = document.createElement("p");
    this.status.className = "line-status";
    this.status.setAttribute("aria-live", "polite");
    editor.parentNode.insertBefore(this.frame, editor);
    this.frame.appendChild(this.gutter);
    this.frame.appendChild(editor);
    this.frame.appendChild(this.bands);
    this.frame.parentNode.insertBefore(this.status, this.frame.nextSibling);
    this.byLine = {};
    this.lines = 0;
    var marks = this;
    editor.addEventListener("scroll", function () { marks.follow(); });
    editor.addEventListener("input", function () { marks.numbers(); marks.caret(); });
    ["keyup", "click", "focus"].forEach(function (name) {
      editor.addEventListener(name, function () { marks.caret(); });
    });
    this.numbers();
  }

  LineMarks.prototype.lineHeight = function () {
    return parseFloat(window.getComputedStyle(this.editor).lineHeight);
  };

  LineMarks.prototype.numbers = function () {
    var count = lineCount(this.editor.value);
    if (count === this.lines) {
      return;
    }
    this.lines = count;
    var fragment = document.createDocumentFragment();
    for (var line = 1; line <= count; line += 1) {
      var number = document.createElement("span");
      number.textContent = String(line);
      fragment.appendChild(number);
    }
    this.gutter.replaceChildren(fragment);
    this.paint();
  };

  LineMarks.prototype.show = function (issues) {
    var byLine = {};
    issues.forEach(function (issue) {
      if (issue.line) {
        (byLine[issue.line] = byLine[issue.line] || []).push(issue);
      }
    });
    this.byLine = byLine;
    this.paint();
    this.caret();
  };

  LineMarks.prototype.paint = function () {
    var byLine = this.byLine;
    var height = this.lineHeight();
    var top = parseFloat(window.getComputedStyle(this.editor).paddingTop);
    var bands = document.createDocumentFragment();
    Array.prototype.forEach.call(this.gutter.children, function (number, index) {
      var issues = byLine[index + 1];
      number.className = issues ? "gutter-" + severity(issues) : "";
      number.title = issues ? issues.map(function (issue) { return issue.message; }).join("\n") : "";
    });
    Object.keys(byLine).forEach(function (line) {
      var band = document.createElement("div");
      band.className = "code-band code-band-" + severity(byLine[line]);
      band.style.top = top + (Number(line) - 1) * height + "px";
      band.style.height = height + "px";
      bands.appendChild(band);
    });
    this.bands.replaceChildren(bands);
    this.bands.style.left = this.gutter.offsetWidth + "px";
    this.follow();
  };

  LineMarks.prototype.follow = function () {
    this.gutter.scrollTop = this.editor.scrollTop;
    this.bands.style.transform = "translateY(" + -this.editor.scrollTop + "px)";
  };

  LineMarks.prototype.caret = function () {
    var line = lineCount(this.editor.value.slice(0, this.editor.selectionStart));
    var issues = this.byLine[line] || [];
    this.status.textContent = issues.map(function (issue) {
      return "Line " + line + ": " + issue.message;
    }).join(" ");
    this.status.className = "line-status" + (issues.length ? " line-status-" + severity(issues) : "");
  };

  LineMarks.prototype.jump = function (line) {
    var starts = this.editor.value.split("\n");
    var start = 0;
    for (var index = 0; index < line - 1 && index < starts.length; index += 1) {
      start += starts[index].length + 1;
    }
    var end = start + (starts[line - 1] || "").length;
    this.editor.focus();
    this.editor.setSelectionRange(start, end);
    this.editor.scrollTop = Math.max(0, (line - 3) * this.lineHeight());
    this.caret();
  };

  function severity(issues) {
    return issues.some(function (issue) { return issue.severity === "error"; }) ? "error" : "warning";
  }

  function setUp(editor) {
    var panel = document.getElementById(editor.getAttribute("data-checked-by"));
    if (!panel) {
      return;
    }
    var container = editor.closest("[data-editor]") || editor.parentNode;
    var marks = new LineMarks(editor);
    var sent = null;
    var answered = null;  // the text the panel's content is the answer for
    function stale() {
      panel.classList.add("check-stale");
      container.classList.add("is-stale");
    }
    editor.addEventListener("input", stale);
    // The form holds an edit it cannot write as JSON yet: what the panel shows is not for it.
    editor.addEventListener("editor:unsynced", stale);
    editor.addEventListener("htmx:configRequest", function (event) {
      sent = event.detail.parameters[editor.name];
    });
    document.body.addEventListener("htmx:afterSwap", function (event) {
      if (event.detail.target === panel) {
        answered = sent;
        settle();
      }
    });
    // The form wrote text identical to what it had before (no new check is sent for it).
    editor.addEventListener("editor:synced", settle);

    function settle() {
      // An answer for older text, or while the form holds an edit it could not write as JSON.
      var stale = answered !== editor.value || editor.hasAttribute("data-unsynced");
      panel.classList.toggle("check-stale", stale);
      container.classList.toggle("is-stale", stale);
      if (stale) {
        return;
      }
      var issues = readIssues(panel);
      marks.show(issues);
      issues.forEach(function (issue) {
        if ((issue.line || issue.path) && !issue.item.classList.contains("issue-link")) {
          issue.item.classList.add("issue-link");
          issue.item.tabIndex = 0;
          issue.item.addEventListener("click", function () { showIssue(issue); });
          issue.item.addEventListener("keydown", function (key) {
            if (key.key === "Enter") {
              showIssue(issue);
            }
          });
        }
      });
      editor.dispatchEvent(new CustomEvent("editor:checked", { detail: { issues: issues } }));
    }
    // The structured form shows the issue's field when it is open; otherwise the text shows its line.
    function showIssue(issue) {
      var shown = !editor.dispatchEvent(new CustomEvent("editor:show-issue", { cancelable: true, detail: issue }));
      if (!shown && issue.line) {
        marks.jump(issue.line);
      }
    }
    editor.addEventListener("editor:shown", function () {
      marks.numbers();
      marks.paint();
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
