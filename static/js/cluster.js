// Cluster page: the HA table and the maintenance buttons (with their
// interlocks) are one server-rendered fragment, fetched again on each
// "ha.update" message and on each (re)connect. The score charts reload on
// HA changes too (the last hour moves), and when another range is picked.
(function () {
  "use strict";
  var root = document.getElementById("cluster");
  var banner = document.getElementById("conn-banner");
  var refresh = window.heportalFragments.refresher(root.dataset.liveUrl);
  var charts = window.heportalCharts.charts(document.getElementById("charts"));
  var retry = 500;
  // Interlocks also change without an HA update: a run starts or ends, or
  // the HA data grows stale because the poller stopped.
  var PERIODIC_MS = 10000;

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + root.dataset.wsPath);
    window.heportalFragments.keepChecking(ws);
    ws.onopen = function () { banner.hidden = true; retry = 500; };
    ws.onmessage = function (msg) {
      var ev = JSON.parse(msg.data);
      if (ev.type === "ha.update") { refresh(); charts.reloadSoon(2000); }
    };
    ws.onclose = function () {
      banner.hidden = false;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }
  document.querySelectorAll(".chart-range button").forEach(function (button) {
    button.addEventListener("click", function () {
      document.querySelectorAll(".chart-range button").forEach(function (b) {
        b.setAttribute("aria-pressed", b === button ? "true" : "false");
      });
      charts.setRange(button.dataset.range);
    });
  });
  setInterval(function () { if (!document.hidden) { refresh(); } }, PERIODIC_MS);
  setInterval(function () { if (!document.hidden) { charts.reloadSoon(0); } }, 60000);
  charts.load();
  window.heportalCluster = { charts: charts };
  connect();
})();
