// Progressive enhancement only: every page works without this file.
// - forms with data-confirm ask before they are sent;
// - elements with data-live="<url>" reload their page when the server-sent event stream at that
//   URL reports a change (the page stays usable without it: a manual reload shows the same);
// - buttons with data-print (hidden until this file shows them) print the page.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
  var live = document.querySelector("[data-live]");
  if (!live || !window.EventSource) {
    return;
  }
  var source = new EventSource(live.getAttribute("data-live"));
  source.addEventListener("change", function () {
    var active = document.activeElement;
    var typing = active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.tagName === "SELECT");
    if (typing) {
      live.setAttribute("data-stale", "true");
      return;
    }
    source.close();
    window.location.reload();
  });
});
