// Behaviour the templates ask for by data attributes, so that no page needs inline script and
// the Content-Security-Policy can forbid it (script-src 'self').
//   <form data-confirm="Question?">   asks before submitting; Cancel keeps the form unsent.
//   <select data-autosubmit>          submits its form when the choice changes.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
    field.form.requestSubmit();
  }
});
