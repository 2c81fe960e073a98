// Times that tick: durations (data-started, until data-finished) and ages
// ("last update 8 s ago", data-at), formatted as upgrades/templatetags/portal.py
// formats them on the server. Elements replaced by a live fragment are picked
// up at the next tick.
(function () {
  "use strict";

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function formatSeconds(s) {
    if (s < 10) { return s.toFixed(1) + " s"; }
    s = Math.floor(s);
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min " + pad(s % 60) + " s"; }
    return Math.floor(s / 3600) + " h " + pad(Math.floor(s % 3600 / 60)) + " min";
  }

  function formatAge(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) { return s + " s ago"; }
    if (s < 3600) { return Math.floor(s / 60) + " min ago"; }
    if (s < 86400) { return Math.floor(s / 3600) + " h " + pad(Math.floor(s % 3600 / 60)) + " min ago"; }
    return Math.floor(s / 86400) + " d ago";
  }

  function showDuration(el) {
    if (!el.dataset.started) { el.textContent = ""; return; }
    var end = el.dataset.finished ? Date.parse(el.dataset.finished) : Date.now();
    el.textContent = formatSeconds(Math.max(0, (end - Date.parse(el.dataset.started)) / 1000));
  }

  function tick() {
    document.querySelectorAll("[data-started]:not([data-finished])").forEach(showDuration);
    document.querySelectorAll("[data-at]").forEach(function (el) {
      var seconds = (Date.now() - Date.parse(el.dataset.at)) / 1000;
      el.textContent = formatAge(seconds);
      // data-old-after: from then on the value is too old to trust (the poller is away).
      if (el.dataset.oldAfter) { el.classList.toggle("age-old", seconds > parseFloat(el.dataset.oldAfter)); }
    });
  }

  setInterval(tick, 1000);
  window.heportalClock = { formatSeconds: formatSeconds, formatAge: formatAge, showDuration: showDuration, tick: tick };
})();
