// Progressive enhancement only: every page works without this file.
// - forms with data-confirm ask before they are sent;
// - elements with data-live="<url>" reload their page when the server-sent event stream at that
//   URL reports a change (the page stays usable without it: a manual reload shows the same); the
//   messages the last action left (.flashes) are shown again after that reload, as text;
// - buttons with data-print (hidden until this file shows them) print the page.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
var KEPT = "gateway-kept-flashes";
function keepFlashes() {
  var kept = [];
  document.querySelectorAll(".flashes .flash").forEach(function (p) {
    kept.push({kind: p.className, text: p.textContent});
  });
  if (kept.length) {
    window.sessionStorage.setItem(KEPT, JSON.stringify(kept));
  }
}
function showKeptFlashes() {
  var kept = window.sessionStorage.getItem(KEPT);
  window.sessionStorage.removeItem(KEPT);
  var main = document.getElementById("main");
  if (!kept || !main || document.querySelector(".flashes")) {
    return;
  }
  var box = document.createElement("div");
  box.className = "flashes";
  box.setAttribute("role", "status");
  JSON.parse(kept).forEach(function (flash) {
    var p = document.createElement("p");
    p.className = flash.kind;
    p.textContent = flash.text;
    box.appendChild(p);
  });
  main.insertBefore(box, main.firstChild);
}
document.addEventListener("DOMContentLoaded", function () {
  showKeptFlashes();
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
  var live = document.querySelector("[data-live]");
  if (!live || !window.EventSource) {
    return;
  }
  var source = new EventSource(live.getAttribute("data-live"));
  var leaving = false;
  // Once the reader follows a link or sends a form, a reload would replace where they are going.
  window.addEventListener("beforeunload", function () {
    leaving = true;
    source.close();
  });
  source.addEventListener("change", function () {
    if (leaving) {
      return;
    }
    var active = document.activeElement;
    var typing = active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.tagName === "SELECT");
    if (typing) {
      live.setAttribute("data-stale", "true");
      return;
    }
    source.close();
    keepFlashes();
    window.location.reload();
  });
});
