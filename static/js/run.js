// Live run page: each step's output in a terminal view (xterm.js), fed over
// the websocket. On (re)connect it sends the last sequence number it has per
// step, so the server replays exactly what is missing: no gap, no duplicate.
// Status changes also re-fetch the run's progress, actions, preflight and
// history (one server-rendered fragment), so the buttons follow the run.
//
// Memory stays bounded whatever the log's size: a terminal keeps its last
// ``data-scrollback`` lines (older ones are in the full log download), and a
// paused view holds at most that many new lines until it follows again.
(function () {
  "use strict";
  var TERMINAL = ["succeeded", "failed", "cancelled", "interrupted", "rejected", "skipped"];
  var MAX_ROWS = 24;  // a terminal grows with its output up to this height, then scrolls
  var STREAM_COLOUR = { stderr: "\x1b[31m", system: "\x1b[36m" };
  var root = document.getElementById("run");
  var banner = document.getElementById("conn-banner");
  var runStatus = document.getElementById("run-status");
  var refresh = window.heportalFragments.refresher(root.dataset.liveUrl);
  var scrollback = parseInt(root.dataset.scrollback, 10) || 5000;
  var last = {};      // step id -> last seq received
  var views = {};     // step id -> its terminal view, made on its first line
  var finished = false;
  var retry = 500;

  function section(stepId) { return root.querySelector('[data-step="' + stepId + '"]'); }

  // Everything a line may hold that is not text or colour, one alternative a kind.
  var CONTROLS = new RegExp([
    "\\x1b\\[([0-?]*)([ -/]*)([@-~]|$)",         // CSI: cursor, erase, scroll region, modes, SGR
    "\\x1b[\\]PX^_][\\s\\S]*?(?:\\x07|\\x9c|\\x1b\\\\|$)",  // OSC (title, clipboard), DCS, SOS, PM, APC
    "\\x1b[ -/]*[0-~]?",                           // other escapes: save/restore cursor, reset, index
    "[\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f]",              // C0 and C1 controls but tab
  ].join("|"), "g");
  var ANY_CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/;  // what every match above starts with

  function sgr(params) {
    // A colour sequence's parameters without conceal (8): a shown line stays readable.
    var parts = params.split(";"), kept = [];
    for (var i = 0; i < parts.length; i++) {
      var p = parts[i];
      if ((p === "38" || p === "48" || p === "58") && (parts[i + 1] === "5" || parts[i + 1] === "2")) {
        var n = parts[i + 1] === "5" ? 3 : 5;
        kept.push.apply(kept, parts.slice(i, i + n));
        i += n - 1;
      } else if (!/^0*8$/.test(p)) {
        kept.push(p);
      }
    }
    return kept.length || !params ? "\x1b[" + kept.join(";") + "m" : "";
  }

  function neutralise(text) {
    // The text as the terminal may render it: what the host printed, its colours
    // (SGR) kept and every sequence that moves the cursor, erases, or talks to the
    // terminal removed, so a line once shown stays and the search finds what the log
    // holds. Only the view is filtered: the stored log and its download keep every byte.
    if (!ANY_CONTROL.test(text)) { return text; }  // most lines: a third quicker than replace
    return text.replace(CONTROLS, function (all, params, inter, final) {
      return final === "m" && !inter && /^[0-9;:]*$/.test(params) ? sgr(params) : "";
    });
  }

  function encode(line, first) {
    // [seq, stream, text] -> what the terminal is given; a line's own colours end with it.
    // The line break comes before a line, not after it: the cursor stays on the last
    // line, so a terminal sized to its lines shows them all (a cursor waiting on an
    // empty row below took a row, and the first line scrolled out of view).
    var colour = STREAM_COLOUR[line[1]];
    var shown = neutralise(line[2]);
    var text = (first ? "" : "\r\n") + (colour || "") + shown;
    return colour || shown.indexOf("\x1b") >= 0 ? text + "\x1b[0m" : text;
  }

  function View(sec) {
    var box = sec.querySelector(".output");
    var self = this;
    this.sec = sec;
    this.following = true;
    this.held = [];       // lines received while paused
    this.received = 0;
    this.written = 0;     // lines handed to xterm
    this.writing = 0;     // writes handed to xterm and not yet parsed
    this.term = new window.Terminal({
      scrollback: scrollback, rows: 2, disableStdin: true, cursorBlink: false, convertEol: false,
      fontSize: 13, lineHeight: 1.15, fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
      theme: { background: "#151515", foreground: "#e0e0e0", cursor: "#151515", selectionBackground: "#73bcf7",
               selectionForeground: "#151515" },
    });
    this.fit = new window.FitAddon.FitAddon();
    this.search = new window.SearchAddon.SearchAddon();
    this.term.loadAddon(this.fit);
    this.term.loadAddon(this.search);
    box.hidden = false;
    this.term.open(box.querySelector(".terminal"));
    this.term.write("\x1b[?25l");  // no cursor: nothing is typed here
    this.resize();

    var follow = box.querySelector(".follow");
    this.followButton = follow;
    follow.addEventListener("click", function () { self.setFollowing(!self.following); });
    // Scrolling up to read means: hold still.
    box.querySelector(".terminal").addEventListener("wheel", function (e) {
      if (e.deltaY < 0 && self.following) { self.setFollowing(false); }
    }, { passive: true });
    var input = box.querySelector(".output-search");
    var result = box.querySelector(".search-result");
    function find(backwards) {
      if (!input.value) { result.textContent = ""; return; }
      if (self.following) { self.setFollowing(false); }
      var found = backwards ? self.search.findPrevious(input.value) : self.search.findNext(input.value);
      result.textContent = found ? "" : "not in the last " + scrollback.toLocaleString("en") + " lines";
    }
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { e.preventDefault(); find(e.shiftKey); }
      else if (e.key === "Escape") { input.value = ""; self.search.clearDecorations(); result.textContent = ""; }
    });
    box.querySelector(".search-next").addEventListener("click", function () { find(false); });
    box.querySelector(".search-prev").addEventListener("click", function () { find(true); });
    this.count = box.querySelector(".output-count");
  }

  View.prototype.resize = function () {
    var dims = this.fit.proposeDimensions();
    var cols = dims && dims.cols > 10 ? dims.cols : 80;
    var buffer = this.term.buffer.active;
    var used = buffer.baseY + buffer.cursorY + 1;  // rows written: the cursor is on the last one
    var rows = Math.max(2, Math.min(MAX_ROWS, used));
    if (cols !== this.term.cols || rows !== this.term.rows) { this.term.resize(cols, rows); }
  };

  View.prototype.add = function (lines) {
    this.received += lines.length;
    if (!this.following) {
      Array.prototype.push.apply(this.held, lines);
      if (this.held.length > scrollback) { this.held.splice(0, this.held.length - scrollback); }
      this.showCount();
      return;
    }
    this.write(lines);
  };

  View.prototype.write = function (lines) {
    var self = this;
    var text = "";
    for (var i = 0; i < lines.length; i++) { text += encode(lines[i], this.written + i === 0); }
    this.written += lines.length;
    this.writing++;
    this.term.write(text, function () {
      self.writing--;
      self.resize();
      if (self.following) { self.term.scrollToBottom(); }
    });
    this.showCount();
  };

  View.prototype.setFollowing = function (on) {
    this.following = on;
    this.followButton.setAttribute("aria-pressed", on ? "true" : "false");
    if (on && this.held.length) {
      var held = this.held;
      this.held = [];
      this.write(held);
    }
    if (on) { this.term.scrollToBottom(); }
    this.showCount();
  };

  View.prototype.showCount = function () {
    this.followButton.textContent = this.following ? "Following" :
      "Paused" + (this.held.length ? " (" + this.held.length.toLocaleString("en") + " new)" : "");
    this.count.textContent = this.received.toLocaleString("en") + " lines" +
      (this.received > scrollback ? ", the last " + scrollback.toLocaleString("en") + " shown (full log: download)" : "");
  };

  // The text the view shows, one string per line (wrapped rows joined):
  // for people copying, and for the browser tests.
  View.prototype.lines = function () {
    var buffer = this.term.buffer.active;
    var out = [];
    var end = this.written ? buffer.baseY + buffer.cursorY + 1 : 0;  // the cursor is on the last line
    for (var i = 0; i < end; i++) {
      var row = buffer.getLine(i);
      var text = row.translateToString(true);
      if (row.isWrapped && out.length) { out[out.length - 1] += text; } else { out.push(text); }
    }
    return out;
  };

  function appendLines(stepId, lines) {
    var sec = section(stepId);
    if (!sec) { return; }
    var have = last[stepId] || 0;
    var fresh = [];
    for (var i = 0; i < lines.length; i++) {
      if (lines[i][0] > have) { fresh.push(lines[i]); have = lines[i][0]; }
    }
    last[stepId] = have;
    if (!fresh.length) { return; }
    if (!views[stepId]) { views[stepId] = new View(sec); }
    views[stepId].add(fresh);
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
    window.heportalClock.showDuration(el);
  }

  function setStep(ev) {
    var sec = section(ev.step);
    if (!sec) { return; }
    var badge = sec.querySelector(".step-status");
    var changed = badge.dataset.status !== ev.status;
    badge.textContent = ev.label || ev.status;
    badge.dataset.status = ev.status;
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
    runStatus.textContent = ev.label || ev.status;
    runStatus.dataset.status = ev.status;
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
    window.heportalFragments.keepChecking(ws);
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

  window.addEventListener("resize", function () {
    Object.keys(views).forEach(function (k) { views[k].resize(); });
  });
  window.heportalRun = {
    last: last,
    // The lines a step's terminal shows, and whether xterm has written all it was given.
    lines: function (stepId) { return views[stepId] ? views[stepId].lines() : []; },
    settled: function (stepId) { return !views[stepId] || views[stepId].writing === 0; },
    view: function (stepId) { return views[stepId]; },
    neutralise: neutralise,
  };
  connect();
})();
