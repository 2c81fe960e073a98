// Home page: every cluster's card, live. The websocket says which cluster
// (or which run) changed; the page re-fetches that card alone, a
// server-rendered fragment. On each (re)connect every card is fetched
// again, since changes may have been missed meanwhile.
(function () {
  "use strict";
  var root = document.getElementById("clusters");
  var banner = document.getElementById("conn-banner");
  var refreshers = {};  // cluster id -> debounced re-fetch of its card
  var retry = 500;
  var connected = false;

  function refreshCard(clusterId) {
    if (!refreshers[clusterId]) {
      refreshers[clusterId] = window.heportalFragments.refresher("/clusters/" + clusterId + "/card/");
    }
    refreshers[clusterId]();
  }

  function cardOfRun(runId) {
    return root.querySelector('.cluster-card[data-run="' + runId + '"]');
  }

  function refreshAll() {
    root.querySelectorAll(".cluster-card").forEach(function (card) { refreshCard(card.dataset.cluster); });
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + root.dataset.wsPath);
    ws.onopen = function () { banner.hidden = true; retry = 500; };
    ws.onmessage = function (msg) {
      var ev = JSON.parse(msg.data);
      if (ev.type === "home.ready") {
        if (connected) { refreshAll(); }  // changes may have been missed while away
        connected = true;
        return;
      }
      if (ev.type !== "home.changed") { return; }
      if (ev.cluster) { refreshCard(ev.cluster); return; }
      var card = cardOfRun(ev.run);
      if (card) { refreshCard(card.dataset.cluster); }
    };
    ws.onclose = function () {
      banner.hidden = false;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }
  connect();
})();
