/* Course import with a live progress bar: upload with XHR (upload progress events), then poll the
   import job until it is installed or refused. Without JavaScript the form posts normally.
   When the job ends, the course list and the recent imports are fetched again from this page's URL
   and swapped in, so a new course is listed without a reload. */
(function () {
  "use strict";
  var POLL_MS = 700;

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("import-form");
    if (!form) { return; }
    var box = document.getElementById("import-progress");
    var bar = document.getElementById("import-bar");
    var state = document.getElementById("import-state");
    var api = form.getAttribute("data-api");

    function msg(name, vars) {
      var text = form.getAttribute("data-msg-" + name) || "";
      Object.keys(vars || {}).forEach(function (k) { text = text.replace("{" + k + "}", vars[k]); });
      return text;
    }
    function csrf() { return document.querySelector('meta[name="csrf-token"]').content; }
    function stage(name) { return form.getAttribute("data-stage-" + name) || name; }

    function refreshLists() {
      fetch(window.location.pathname, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html");
          ["course-list", "recent-imports"].forEach(function (id) {
            var mine = document.getElementById(id), theirs = fresh.getElementById(id);
            if (mine && theirs) { mine.replaceWith(document.importNode(theirs, true)); }
          });
        })
        .catch(function () { /* the lists stay as they were; a reload shows them */ });
    }

    // One import at a time from this page: a second click while one runs would upload the bundle
    // again and start a second job for the same course.
    var button = form.querySelector('button[type="submit"], input[type="submit"]');
    function setBusy(busy) {
      form.setAttribute("aria-busy", busy ? "true" : "false");
      if (button) { button.disabled = busy; }
    }

    function finish(kind, text) {
      setBusy(false);
      state.textContent = text;
      state.className = "notice " + (kind === "done" ? "ok" : "bad");
      box.setAttribute("data-state", kind);
      refreshLists();
    }

    function poll(jobId) {
      fetch(api + "/" + encodeURIComponent(jobId), { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, job: j }; }); })
        .then(function (r) {
          var job = r.job;
          if (!r.ok) { finish("failed", msg("failed", { error: job.error || "" })); return; }
          bar.value = job.percent || 0;
          if (job.state === "done") {
            bar.value = 100;
            // "unchanged" is not "installed": the same version again changes nothing on the box.
            var how = form.hasAttribute("data-msg-done-" + job.result.status) ? "done-" + job.result.status : "done";
            finish("done", msg(how, { title: job.result.title, version: job.result.version }));
          } else if (job.state === "failed" || job.state === "cancelled") {
            finish("failed", msg("failed", { error: job.error || "" }));
          } else {
            state.textContent = job.state === "queued" ? msg("queued") : msg("running", { stage: stage(job.stage) });
            setTimeout(function () { poll(jobId); }, POLL_MS);
          }
        })
        .catch(function () {
          state.textContent = msg("lost");
          setTimeout(function () { poll(jobId); }, POLL_MS * 3);
        });
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (form.getAttribute("aria-busy") === "true") { return; }
      setBusy(true);
      var xhr = new XMLHttpRequest();
      box.hidden = false;
      box.removeAttribute("data-state");
      state.className = "";
      bar.value = 0;
      state.textContent = msg("uploading");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { bar.value = Math.round(100 * e.loaded / e.total); }
      });
      xhr.addEventListener("load", function () {
        var data = {};
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* shown below */ }
        if (xhr.status >= 200 && xhr.status < 300 && data.id) {
          bar.value = 0;
          poll(data.id);
        } else {
          finish("failed", msg("failed", { error: data.error || xhr.statusText }));
        }
      });
      xhr.addEventListener("error", function () { setBusy(false); state.textContent = msg("lost"); });
      xhr.open("POST", api);
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.send(new FormData(form));
    });

    var existing = form.getAttribute("data-job");
    if (existing) { box.hidden = false; setBusy(true); poll(existing); }
  });
})();
