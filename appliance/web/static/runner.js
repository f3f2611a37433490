/* Exercise runner: one question at a time, instant feedback, hints, and an answer queue that
   survives Wi-Fi blips and page reloads.
   Every answer gets an id made here (attempt_uid) and is stored in localStorage BEFORE it is sent.
   It leaves the queue only when the server has answered (2xx) or refused it for good (4xx that
   retrying cannot fix). The server counts an id once, so sending it again after a lost reply is safe.
   A card's "Check" button is disabled while its answer is on the way, and the same answer pressed
   again right after (a second Enter) is not sent again: one answer, one attempt. */
(function () {
  "use strict";
  var QUEUE_KEY = "ce-answer-queue-v1";
  var MAX_DELAY_MS = 30000;
  var runner, cards, dots, statusLine, announcer, student, course, api;
  var memoryQueue = [];
  var sending = false, retryTimer = null, failures = 0;
  var shownAt = {};
  var lastSent = null;  // {id, key}: the exercise and answer (JSON) this page sent last, as the server counts repeats

  function uuid4() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);  // available on plain-http LAN pages, unlike randomUUID
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function loadQueue() {
    try { return JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]"); } catch (e) { return memoryQueue; }
  }
  function saveQueue(q) {
    memoryQueue = q;
    try { localStorage.setItem(QUEUE_KEY, JSON.stringify(q)); } catch (e) { /* private mode: memory only */ }
  }
  function mine(q) { return q.filter(function (it) { return it.student === student; }); }

  function msg(name, vars) {
    var text = runner.getAttribute("data-msg-" + name) || "";
    Object.keys(vars || {}).forEach(function (k) { text = text.replace("{" + k + "}", vars[k]); });
    return text;
  }
  function csrf() { return document.querySelector('meta[name="csrf-token"]').content; }
  function cardFor(exerciseId) {
    return cards.filter(function (c) { return c.getAttribute("data-exercise") === exerciseId; })[0];
  }

  function show(index, focus) {
    cards.forEach(function (c, i) { c.hidden = i !== index; });
    dots.forEach(function (d, i) { d.classList.toggle("current", i === index); });
    var card = cards[index];
    if (!card) { return; }
    shownAt[card.getAttribute("data-exercise")] = Date.now();
    if (focus) {
      var first = card.querySelector("input, textarea");
      if (first) { first.focus({ preventScroll: true }); }
      // Focus alone scrolls the field just into view, or not at all while the lesson's pictures load
      // above it: show the whole question, from its top.
      card.scrollIntoView({ block: "start" });
    }
  }

  function answerOf(card) {
    var kind = card.getAttribute("data-kind");
    if (kind === "single_choice") {
      var picked = card.querySelector('input[name="choice"]:checked');
      return picked ? { choice: parseInt(picked.value, 10) } : null;
    }
    if (kind === "multiple_choice") {
      var all = Array.prototype.slice.call(card.querySelectorAll('input[name="choice"]:checked'));
      return all.length ? { choices: all.map(function (i) { return parseInt(i.value, 10); }) } : null;
    }
    var field = card.querySelector("input[type=text], textarea");
    var text = field.value.trim();
    if (!text) { return null; }
    return kind === "numeric" ? { value: text } : { text: text };
  }

  // One polite status, there from page load, says each verdict, hint and error: a live region that
  // appears together with its text (the card's feedback box was hidden while empty) is often not
  // read at all, and on a right answer the focus moves to "Next question" at the same moment.
  // Cleared first and set a moment later, so the same words twice ("Not quite" again) are read again;
  // what comes within that moment (two held answers sent back to back) is said together, not the
  // second over the first.
  var toSay = [], sayTimer = null;
  function announce(text) {
    if (!announcer) { return; }
    toSay.push(text.replace(/\s+/g, " ").trim());
    if (sayTimer) { return; }
    announcer.textContent = "";
    sayTimer = setTimeout(function () {
      announcer.textContent = toSay.join(" ");
      toSay = [];
      sayTimer = null;
    }, 100);
  }

  // What a screen reader reads of an element: its text without the parts hidden from it (the ▲).
  function spoken(el) {
    var copy = el.cloneNode(true);
    Array.prototype.forEach.call(copy.querySelectorAll('[aria-hidden="true"]'), function (n) { n.remove(); });
    // The verdict, the explanation and the mastery are blocks: a space after each, or "right.There".
    Array.prototype.forEach.call(copy.querySelectorAll("strong, p, div"), function (n) { n.append(" "); });
    return copy.textContent;
  }

  function line(className, text) {
    var p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    return p;
  }

  // notes: short lines under the verdict (the teacher will read it, already sent).
  function setFeedback(card, cls, text, explanation, notes) {
    var box = card.querySelector(".feedback");
    box.textContent = "";
    var note = document.createElement("div");
    note.className = "notice " + cls;
    var strong = document.createElement("strong");
    strong.textContent = text;
    note.appendChild(strong);
    (notes || []).forEach(function (n) { note.appendChild(line("feedback-note " + n, msg(n))); });
    if (explanation) { note.appendChild(line("explanation", explanation)); }
    box.appendChild(note);
  }

  // An answer sent back to be written again ("choose an answer first", "write a number") is tied to
  // its field, so a screen reader says why when the child is back in it.
  function markInvalid(card, invalid) {
    var box = card.querySelector(".feedback");
    Array.prototype.forEach.call(card.querySelectorAll("input, textarea"), function (field) {
      var described = (field.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
        return id && id !== box.id;
      });
      if (invalid) { described.push(box.id); field.setAttribute("aria-invalid", "true"); }
      else { field.removeAttribute("aria-invalid"); }
      if (described.length) { field.setAttribute("aria-describedby", described.join(" ")); }
      else { field.removeAttribute("aria-describedby"); }
    });
  }

  function setBusy(card, busy) {
    var button = card && card.querySelector("button.check");
    if (!button) { return; }
    var hadFocus = document.activeElement === button;
    button.disabled = busy;
    card.setAttribute("aria-busy", busy ? "true" : "false");
    // A disabled button drops the keyboard focus; give it back when the answer is in.
    if (!busy && (hadFocus || document.activeElement === document.body) && !card.hidden) { button.focus(); }
  }

  function showResult(exerciseId, result) {
    var card = cardFor(exerciseId);
    if (!card) { return; }
    // The model was unsure of its grade (result.review): the child hears neither "right" nor "wrong",
    // as for an answer waiting for the teacher, who reads it first. Told "Well done" with the worked
    // answer, a child who wrote a classic misconception learnt it was right; told "Not quite", one who
    // wrote a right answer in their own words learnt to distrust them.
    var code = result.review ? "pending" : result.feedback || (result.correct ? "correct" : "incorrect");
    markInvalid(card, false);
    var cls = code === "correct" ? "ok" : code === "pending" ? "" : code === "partly" ? "warn" : "bad";
    var notes = [];
    if (result.repeat) { notes.push("repeat"); }   // the same answer again: not counted twice
    // A pending answer waits for the teacher: the explanation would hand the child the answer to copy.
    setFeedback(card, cls, msg(code), result.correct && code !== "pending" ? result.explanation : "", notes);
    if (code !== "pending") { showMastery(card, result.mastery, result.mastery_before); }  // its direction would give the grade away
    announce(spoken(card.querySelector(".feedback")));
    // The teacher's grade was of the answer before this one: beside the new result it contradicts it.
    var mark = card.querySelector(".teacher-mark");
    if (mark && !result.repeat) { mark.remove(); }
    var index = cards.indexOf(card);
    var done = result.correct || code === "pending";
    // The latest answer decides: right after wrong turns the card green, wrong after right turns it back.
    card.classList.toggle("is-correct", !!done);
    if (dots[index]) { dots[index].classList.toggle("done", !!done); }
    var doneMark = card.querySelector(".step-done");  // the dots' meaning for a screen reader
    if (doneMark) { doneMark.hidden = !done; }
    if (done) {
      var next = card.querySelector(".next, .lesson-end");
      if (next && !card.hidden) { next.focus(); }  // Enter moves on: no hunting for the button
    }
    var finished = cards.every(function (c) { return c.classList.contains("is-correct"); });
    var finish = runner.querySelector(".finish");
    if (finish) { finish.hidden = !finished; }
    // Done by mastering its skills with questions still open: say so now, not at the next visit.
    var early = runner.querySelector(".mastered-early");
    if (early && !result.replayed && !result.repeat && typeof result.lesson_mastered === "boolean") {
      early.hidden = finished || !(result.lesson_mastered && result.lesson_status === "completed");
    }
  }

  // The new mastery of the question's skills, straight from the answer's reply: learning made visible.
  // A rise since the answer before is said with it ("26% mastered, up 13"): for a child who is
  // struggling, the number alone under "Well done!" read as if the right answer had not counted.
  function showMastery(card, mastery, before) {
    var note = card.querySelector(".feedback .notice");
    if (!note || !mastery) { return; }
    before = before || {};
    var names = {};
    try { names = JSON.parse(runner.getAttribute("data-skills") || "{}"); } catch (e) { /* ids will do */ }
    Object.keys(mastery).forEach(function (skill) {
      // Rounded down, as the pages do (ui.py _percent): 84.9% is not yet the 85% of "mastered".
      var pct = Math.floor(mastery[skill] * 100 + 1e-9);
      var line = document.createElement("div");
      line.className = "mastery-line";
      var label = document.createElement("span");
      label.textContent = msg("mastery", { skill: names[skill] || skill, pct: pct });
      var meter = document.createElement("div");
      meter.className = "meter";
      meter.setAttribute("aria-hidden", "true");
      var fill = document.createElement("span");
      fill.style.inlineSize = pct + "%";
      meter.appendChild(fill);
      line.appendChild(label);
      var up = typeof before[skill] === "number" ? pct - Math.floor(before[skill] * 100 + 1e-9) : 0;
      if (up > 0) {
        var rise = document.createElement("span");
        rise.className = "mastery-up";
        var sep = document.createElement("span");
        sep.className = "visually-hidden";
        sep.textContent = ", ";  // read as a pause, not "mastered up"
        var arrow = document.createElement("span");
        arrow.setAttribute("aria-hidden", "true");  // not "black up-pointing triangle"
        arrow.textContent = "\u25B2 ";
        rise.appendChild(sep);
        rise.appendChild(arrow);
        rise.appendChild(document.createTextNode(msg("up", { n: up }).replace(/^\u25B2\s*/, "")));
        line.appendChild(rise);
      }
      line.appendChild(meter);
      note.appendChild(line);
    });
  }

  // Said only once an answer is held back (a send failed): said before every verdict while the answer
  // is merely on its way, "waiting to be sent" made a child think something was wrong.
  // One sentence with the count, written only when it changes: rewritten at every retry, the polite
  // region repeated "No connection" every few seconds for as long as the Wi-Fi was down.
  function updateStatus() {
    var waiting = mine(loadQueue()).length;
    var text = waiting && (failures > 0 || navigator.onLine === false)
      ? msg("queued") + " " + msg("waiting", { n: waiting }) : "";
    if (statusLine.textContent !== text) { statusLine.textContent = text; }
  }

  function scheduleRetry() {
    if (retryTimer) { return; }
    failures += 1;
    var delay = Math.min(MAX_DELAY_MS, 1000 * Math.pow(2, failures - 1)) * (0.5 + Math.random());
    retryTimer = setTimeout(function () { retryTimer = null; flush(); }, delay);
  }

  function drop(uid) {
    saveQueue(loadQueue().filter(function (it) { return it.uid !== uid; }));
  }

  function flush() {
    if (sending) { return; }
    var item = mine(loadQueue())[0];
    updateStatus();
    if (!item) { failures = 0; return; }
    sending = true;
    var busyCard = cardFor(item.body.exercise_id);
    setBusy(busyCard, true);
    fetch(api, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(item.body)
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) { return { status: resp.status, data: data }; });
    }).then(function (r) {
      sending = false;
      setBusy(busyCard, false);
      if (r.status >= 200 && r.status < 300) {
        drop(item.uid);
        failures = 0;
        showResult(item.body.exercise_id, r.data);
        flush();
      } else if ([400, 404, 409, 413, 422].indexOf(r.status) >= 0) {
        // The answer itself is the problem (e.g. not a number): tell the child, do not resend.
        drop(item.uid);
        if (lastSent && lastSent.id === item.body.exercise_id && lastSent.key === JSON.stringify(item.body.answer)) {
          lastSent = null;  // refused, not counted: the child may send it again
        }
        if (busyCard) {
          setFeedback(busyCard, "bad", r.data.error || "");
          markInvalid(busyCard, true);
          announce(r.data.error || "");
        }
        flush();
      } else {
        scheduleRetry();
        updateStatus();
      }
    }).catch(function () {
      sending = false;
      setBusy(busyCard, false);
      scheduleRetry();
      updateStatus();
    });
  }

  function submit(card, ev) {
    ev.preventDefault();
    var answer = answerOf(card);
    var kind = card.getAttribute("data-kind");
    if (!answer) {
      setFeedback(card, "warn", msg(/choice/.test(kind) ? "choose" : "write"));
      markInvalid(card, true);
      announce(msg(/choice/.test(kind) ? "choose" : "write"));
      return;
    }
    markInvalid(card, false);
    var id = card.getAttribute("data-exercise");
    var key = JSON.stringify(answer);
    if (lastSent && lastSent.id === id && lastSent.key === key) {
      // A second Enter, or "Check" again on an unchanged answer: it was sent already; say so once.
      var shown = card.querySelector(".feedback .notice");
      if (shown && !shown.querySelector(".feedback-note.repeat")) {
        shown.insertBefore(line("feedback-note repeat", msg("repeat")), shown.querySelector(".explanation, .mastery-line"));
      }
      announce(msg("repeat"));
      return;
    }
    lastSent = { id: id, key: key };  // after another question, the same answer here is practice again
    var uid = uuid4();
    var q = loadQueue();
    q.push({ uid: uid, student: student, body: {
      attempt_uid: uid, course_id: course, exercise_id: id, answer: answer,
      duration_ms: shownAt[id] ? Date.now() - shownAt[id] : null } });
    saveQueue(q);
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }  // a new answer is a good moment to retry
    failures = 0;
    flush();
  }

  function revealHint(card, button) {
    var hints = JSON.parse(card.querySelector(".hints").getAttribute("data-hints") || "[]");
    var box = card.querySelector(".hints");
    var shown = box.querySelectorAll(".hint").length;
    if (shown < hints.length) {
      var p = document.createElement("p");
      p.className = "hint";
      p.textContent = hints[shown];
      box.appendChild(p);
      announce(msg("hint", { n: shown + 1, total: hints.length }) + " " + hints[shown]);
    }
    if (shown + 1 >= hints.length) {
      // No hint left: the button goes, and the focus with it would fall to the page; back to the answer.
      var field = card.querySelector("input, textarea");
      if (field && document.activeElement === button) { field.focus(); }
      button.disabled = true;
    }
  }

  // Pictures above a linked question load lazily and push it down after the page has scrolled to it:
  // scroll back as each one arrives, until the child scrolls or moves on themselves.
  function keepInView(card) {
    var stop = false;
    ["wheel", "touchstart", "keydown", "mousedown"].forEach(function (type) {
      window.addEventListener(type, function () { stop = true; }, { once: true, passive: true });
    });
    function again() {
      if (!stop && card.contains(document.activeElement)) { card.scrollIntoView({ block: "start" }); }
    }
    Array.prototype.forEach.call(document.querySelectorAll("main img"), function (img) {
      if (!img.complete) { img.addEventListener("load", again, { once: true }); }
    });
    window.addEventListener("load", again, { once: true });
  }

  function init() {
    runner = document.getElementById("runner");
    if (!runner) { return; }
    document.documentElement.classList.add("js");
    cards = Array.prototype.slice.call(runner.querySelectorAll("form.exercise"));
    dots = Array.prototype.slice.call(runner.querySelectorAll(".dots li"));
    statusLine = runner.querySelector(".sync-state");
    announcer = runner.querySelector(".announce");
    student = runner.getAttribute("data-student");
    course = runner.getAttribute("data-course");
    api = runner.getAttribute("data-api");
    cards.forEach(function (card, i) {
      if (dots[i] && dots[i].classList.contains("done")) { card.classList.add("is-correct"); }
      card.addEventListener("submit", function (ev) { submit(card, ev); });
      var hint = card.querySelector(".hint-btn");
      if (hint) { hint.addEventListener("click", function () { revealHint(card, hint); }); }
      var next = card.querySelector(".next");
      if (next) { next.addEventListener("click", function () { show(i + 1, true); }); }
      var prev = card.querySelector(".prev");
      if (prev) { prev.addEventListener("click", function () { show(i - 1, true); }); }
    });
    var firstOpen = cards.findIndex(function (c) { return !c.classList.contains("is-correct"); });
    // "Next up" links to one question as #ex-<id>.
    var wanted = location.hash.indexOf("#ex-") === 0 ? cards.indexOf(cardFor(decodeURIComponent(location.hash.slice(4)))) : -1;
    show(wanted >= 0 ? wanted : (firstOpen < 0 ? 0 : firstOpen), wanted >= 0);
    if (wanted >= 0) { keepInView(cards[wanted]); }
    window.addEventListener("online", function () { failures = 0; flush(); });
    flush();  // answers left from before a reload or a lost connection
  }

  document.addEventListener("DOMContentLoaded", init);
})();
