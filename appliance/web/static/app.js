/* Small behaviour shared by every page (no framework): buttons with data-confirm ask before a
   destructive action (remove a student, restore a backup); buttons with data-print print the page
   (the PIN cards). Inline handlers are not used: the Content-Security-Policy forbids them. */
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var btn = ev.submitter || ev.target.querySelector("[data-confirm]");
    var question = btn && btn.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); }
  });
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-print]");
    if (btn) { window.print(); }
  });
})();
