/* Small behaviour shared by every page (no framework): buttons with data-confirm ask before a
   destructive action (remove a student, restore a backup); buttons with data-print print the page
   (the PIN cards); a page opened at #id of an element with a tabindex gets the keyboard focus there
   (the grade review comes back to the next answer after a grade, described by the page's message). Inline handlers are not used: the
   Content-Security-Policy forbids them. */
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
  document.addEventListener("DOMContentLoaded", function () {
    var target = null;
    try { target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1))); } catch (e) { /* bad % */ }
    // Only targets made focusable on purpose: a plain #anchor just scrolls, as browsers do.
    if (target && target.hasAttribute("tabindex")) {
      // The page's message ("Saved: the answer is marked right") is at its top, scrolled away and
      // already there at load, so not read: the focused place describes itself with it.
      var said = document.querySelector(".notice.flash");
      if (said) {
        said.id = said.id || "page-message";
        target.setAttribute("aria-describedby", said.id);
      }
      target.focus();
    }
  });
})();
