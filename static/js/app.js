// Behaviour the templates ask for by data attributes, so that no page needs inline script and
// the Content-Security-Policy can forbid it (script-src 'self').
//   <form data-confirm="Question?">   asks before submitting; Cancel keeps the form unsent.
//   <select data-autosubmit>          submits its form when the choice changes.
//   <input id="..." data-draft>       keeps what was typed across a reload of the page (below).
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    event.stopImmediatePropagation(); // unsent: its drafts stay (below)
  }
});

document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
    field.form.requestSubmit();
  }
});

// <input data-draft> keeps what was typed in it when the page reloads itself (the rollout and
// experiment pages do when their state changes) until its form is sent: kept per page and field
// in sessionStorage, which the tab alone sees and which ends with it.
const draftKey = (field) => `draft:${window.location.pathname}#${field.id}`;

document.addEventListener("input", (event) => {
  const field = event.target;
  if (field instanceof HTMLInputElement && field.hasAttribute("data-draft") && field.id) {
    if (field.value) {
      sessionStorage.setItem(draftKey(field), field.value);
    } else {
      sessionStorage.removeItem(draftKey(field));
    }
  }
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement) {
    form.querySelectorAll("input[data-draft][id]").forEach((field) => sessionStorage.removeItem(draftKey(field)));
  }
});

document.querySelectorAll("input[data-draft][id]").forEach((field) => {
  const draft = sessionStorage.getItem(draftKey(field));
  if (draft && !field.value && !field.disabled) {
    field.value = draft;
  }
});
