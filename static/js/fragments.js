// Live fragments: fetch a server-rendered partial and put each of its
// top-level elements in place of the page's element with the same id.
// What a person is doing there survives the swap, matched by id: the
// focused control, text typed into a field, an open <details>.
(function () {
  "use strict";

  function remember(old) {
    var kept = { focus: null, values: {}, open: {} };
    var active = document.activeElement;
    if (active && active.id && old.contains(active)) { kept.focus = active.id; }
    old.querySelectorAll("input[id], textarea[id]").forEach(function (el) {
      if (el.type === "checkbox") { kept.values[el.id] = el.checked; }
      else if (el.type !== "hidden" && el.value) { kept.values[el.id] = el.value; }
    });
    old.querySelectorAll("details[id]").forEach(function (el) { kept.open[el.id] = el.open; });
    return kept;
  }

  function restore(kept) {
    Object.keys(kept.values).forEach(function (id) {
      var el = document.getElementById(id);
      if (!el) { return; }
      if (el.type === "checkbox") { el.checked = kept.values[id]; } else { el.value = kept.values[id]; }
    });
    Object.keys(kept.open).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.open = kept.open[id]; }
    });
    if (kept.focus) {
      var focus = document.getElementById(kept.focus);
      if (focus && !focus.disabled) { focus.focus(); }
    }
  }

  function replace(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    Array.prototype.slice.call(doc.body.children).forEach(function (fresh) {
      var old = fresh.id && document.getElementById(fresh.id);
      if (!old) { return; }
      var kept = remember(old);
      old.replaceWith(document.importNode(fresh, true));
      restore(kept);
    });
  }

  // A function that re-fetches ``url`` soon (events in a burst cost one
  // request); an answer older than one already applied is dropped.
  function refresher(url, onDone) {
    var asked = 0, applied = 0, timer = null;
    function fetchNow() {
      var n = ++asked;
      fetch(url, { credentials: "same-origin" }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      }).then(function (html) {
        if (n <= applied) { return; }
        applied = n;
        replace(html);
        if (onDone) { onDone(); }
      }).catch(function () { /* the next event or the periodic refresh tries again */ });
    }
    return function () {
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; fetchNow(); }, 100);
    };
  }

  // Every CHECK_MS an open websocket asks whether what the page shows is current
  // ({"type": "check"}): the server joins the socket's group again (a Redis restart
  // forgets every group while the socket may outlive it) and sends what the page
  // missed, if anything (upgrades/consumers.py). A hidden page checks when shown.
  var CHECK_MS = 5000;
  function keepChecking(ws) {
    function check() {
      if (ws.readyState === WebSocket.OPEN && !document.hidden) { ws.send(JSON.stringify({ type: "check" })); }
    }
    var timer = setInterval(check, CHECK_MS);
    document.addEventListener("visibilitychange", check);
    ws.addEventListener("close", function () {
      clearInterval(timer);
      document.removeEventListener("visibilitychange", check);
    });
  }

  window.heportalFragments = { replace: replace, refresher: refresher, keepChecking: keepChecking };
})();
