/* Small behaviour shared by every page (no framework): buttons with data-confirm ask before a
   destructive action (remove a student, restore a backup). */
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var btn = ev.submitter || ev.target.querySelector("[data-confirm]");
    var question = btn && btn.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); }
  });
})();
