/* PIN keypad: big buttons fill the (still typeable) PIN field; four digits sign in.
   The form works without this script: the field takes typed digits and Enter submits. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("pin-form");
    if (!form) { return; }
    var input = form.querySelector("#pin");
    var dots = Array.prototype.slice.call(form.querySelectorAll(".pin-dots span"));
    var pad = form.querySelector(".keypad");
    pad.hidden = false;
    var count = form.querySelector(".pin-count");
    function render(say) {
      dots.forEach(function (d, i) { d.classList.toggle("filled", i < input.value.length); });
      if (say && count) { count.textContent = count.getAttribute("data-msg").replace("{n}", input.value.length); }
    }
    function done() {
      if (/^[0-9]{4}$/.test(input.value)) { form.submit(); }
    }
    pad.addEventListener("click", function (ev) {
      var b = ev.target.closest("button");
      if (!b) { return; }
      if (b.hasAttribute("data-digit") && input.value.length < 4) {
        input.value += b.getAttribute("data-digit");
        render(true);
        done();
      } else if (b.getAttribute("data-action") === "clear") {
        input.value = input.value.slice(0, -1);
        render(true);
      }
    });
    input.addEventListener("input", function () {
      input.value = input.value.replace(/[^0-9]/g, "").slice(0, 4);
      render();
      done();
    });
    render();
  });
})();
