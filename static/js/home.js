// Home page: every cluster's card, live. The websocket brings each changed
// card, rendered by the server once for every open home page, and the page
// puts it in place; should the server not manage, it says which cluster (or
// run) changed and the page fetches that card. Each time the websocket has
// joined ("home.ready") the page fetches all cards once: a change made
// between the page's rendering (or a disconnection) and the join is not missed.
// "home.grid": the clusters this user may see changed (a role, a removed
// cluster): the page fetches its grid again.
(function () {
  "use strict";
  var root = document.getElementById("home");
  var banner = document.getElementById("conn-banner");
  var socket = null;
  // The page says which cards it shows (after each fetch of its grid): the server
  // then sends it those only, not every card its user may see.
  function sayShown() {
    if (!socket || socket.readyState !== WebSocket.OPEN) { return; }
    var ids = Array.prototype.map.call(document.querySelectorAll("#clusters .cluster-card[data-cluster]"),
      function (el) { return Number(el.dataset.cluster); });
    socket.send(JSON.stringify({ type: "shown", cards: ids }));
  }
  var refreshAll = window.heportalFragments.refresher(root.dataset.cardsUrl, sayShown);
  // "Recent runs": fetched again when a run starts or changes status (and on each join).
  var refreshRuns = window.heportalFragments.refresher(root.dataset.runsUrl);
  var refreshers = {};  // cluster id -> debounced re-fetch of its card
  var retry = 500;

  function refreshCard(clusterId) {
    if (!refreshers[clusterId]) {
      refreshers[clusterId] = window.heportalFragments.refresher("/clusters/" + clusterId + "/card/");
    }
    refreshers[clusterId]();
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = socket = new WebSocket(proto + location.host + root.dataset.wsPath);
    window.heportalFragments.keepChecking(ws);
    ws.onopen = function () { banner.hidden = true; retry = 500; };
    ws.onmessage = function (msg) {
      var ev = JSON.parse(msg.data);
      if (ev.runs) { refreshRuns(); }
      if (ev.type === "home.ready") { sayShown(); refreshAll(); refreshRuns(); }
      else if (ev.type === "home.grid") { refreshAll(); }  // the clusters it may see changed
      else if (ev.type === "home.card") { window.heportalFragments.replace(ev.html); }
      else if (ev.type === "home.changed") {  // the server could not render it: fetch it
        var card = ev.cluster ? { dataset: { cluster: ev.cluster } }
          : document.querySelector('.cluster-card[data-run="' + ev.run + '"]');
        if (card) { refreshCard(card.dataset.cluster); }
      }
    };
    ws.onclose = function () {
      banner.hidden = false;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }
  connect();
})();
