// Live run page: appends output lines as they arrive over the websocket.
// On (re)connect it sends the last sequence number it has per step, so the
// server replays exactly what is missing: no gap, no duplicate. Status
// changes also re-fetch the run's actions, preflight and history (one
// server-rendered fragment), so the buttons follow the run.
(function () {
  "use strict";
  var MAX_LINES = 5000;  // bounded DOM: older lines stay in the full log
  var TERMINAL = ["succeeded", "failed", "cancelled", "interrupted", "rejected", "skipped"];
  var root = document.getElementById("run");
  var banner = document.getElementById("conn-banner");
  var runStatus = document.getElementById("run-status");
  var refresh = window.heportalFragments.refresher(root.dataset.liveUrl);
  var last = {};      // step id -> last seq shown
  var counts = {};    // step id -> lines in the DOM
  var finished = false;
  var retry = 500;

  function section(stepId) { return root.querySelector('[data-step="' + stepId + '"]'); }

  function appendLines(stepId, lines) {
    var sec = section(stepId);
    if (!sec) { return; }
    var pre = sec.querySelector(".log");
    var frag = document.createDocumentFragment();
    var have = last[stepId] || 0;
    for (var i = 0; i < lines.length; i++) {
      var seq = lines[i][0];
      if (seq <= have) { continue; }
      have = seq;
      var span = document.createElement("span");
      span.className = "line " + lines[i][1];
      span.dataset.seq = seq;
      span.textContent = lines[i][2] + "\n";
      frag.appendChild(span);
    }
    last[stepId] = have;
    pre.appendChild(frag);
    counts[stepId] = pre.childElementCount;
    while (counts[stepId] > MAX_LINES) {
      pre.removeChild(pre.firstChild);
      counts[stepId]--;
      sec.classList.add("truncated");
    }
  }

  // Durations: as upgrades/templatetags/portal.py formats them.
  function formatSeconds(s) {
    if (s < 10) { return s.toFixed(1) + " s"; }
    s = Math.floor(s);
    function pad(n) { return (n < 10 ? "0" : "") + n; }
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min " + pad(s % 60) + " s"; }
    return Math.floor(s / 3600) + " h " + pad(Math.floor(s % 3600 / 60)) + " min";
  }

  function showDuration(el) {
    if (!el.dataset.started) { el.textContent = ""; return; }
    var end = el.dataset.finished ? Date.parse(el.dataset.finished) : Date.now();
    el.textContent = formatSeconds(Math.max(0, (end - Date.parse(el.dataset.started)) / 1000));
  }

  function trackDuration(el, status) {
    var now = new Date().toISOString();
    if (status === "pending") {
      delete el.dataset.started;
      delete el.dataset.finished;
    } else if (status === "running" || status === "waiting") {
      if (!el.dataset.started || el.dataset.finished) { el.dataset.started = now; }
      delete el.dataset.finished;
    } else if (TERMINAL.indexOf(status) >= 0 && el.dataset.started && !el.dataset.finished) {
      el.dataset.finished = now;
    }
    showDuration(el);
  }

  function setStep(ev) {
    var sec = section(ev.step);
    if (!sec) { return; }
    var badge = sec.querySelector(".step-status");
    var changed = badge.textContent !== ev.status;
    badge.textContent = ev.status;
    badge.className = "step-status status-" + ev.status;
    if (changed) { trackDuration(sec.querySelector(".step-duration"), ev.status); }
    var err = sec.querySelector(".step-error");
    err.textContent = ev.error || "";
    err.hidden = !ev.error;
    var note = sec.querySelector(".step-note");
    note.querySelector(".note-text").textContent = ev.note || "";
    note.hidden = !ev.note;
  }

  function setRun(ev) {
    runStatus.textContent = ev.status;
    runStatus.className = "run-status status-" + ev.status;
    finished = ["succeeded", "failed", "cancelled", "interrupted"].indexOf(ev.status) >= 0;
  }

  function cursor() {
    var parts = [];
    Object.keys(last).forEach(function (k) { parts.push(k + ":" + last[k]); });
    return parts.join(",");
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + root.dataset.wsPath + "?after=" + cursor());
    ws.onopen = function () { banner.hidden = true; retry = 500; };
    ws.onmessage = function (msg) {
      var ev = JSON.parse(msg.data);
      if (ev.type === "output.lines") { appendLines(ev.step, ev.lines); }
      else if (ev.type === "step.status") { setStep(ev); refresh(); }
      else if (ev.type === "run.status") { setRun(ev); refresh(); }
    };
    ws.onclose = function () {
      if (finished) { return; }
      banner.hidden = false;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  setInterval(function () {
    root.querySelectorAll(".step-duration[data-started]:not([data-finished])").forEach(showDuration);
  }, 1000);
  window.heportalRun = { last: last };
  connect();
})();
