// The header's pending-approvals count, live over a websocket (ws/approvals/): the
// server sends this person's count when joined and again whenever a request is made,
// decided, expires or closes. A dropped connection reconnects, and the count it gets
// on joining covers whatever happened meanwhile.
(function () {
  "use strict";
  var badge = document.getElementById("pending-approvals");
  if (!badge || !window.WebSocket) return;
  var retry = 500;
  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + "/ws/approvals/");
    ws.onopen = function () { retry = 500; };
    // Now and then: join again (a Redis restart forgets the group) and count again.
    var check = setInterval(function () {
      if (ws.readyState === WebSocket.OPEN && !document.hidden) { ws.send('{"type": "check"}'); }
    }, 30000);
    ws.onmessage = function (msg) {
      var data = JSON.parse(msg.data);
      if (data.type === "approvals.count") {
        badge.textContent = String(data.pending);
        badge.dataset.live = "1";
      }
    };
    ws.onclose = function (ev) {
      clearInterval(check);
      delete badge.dataset.live;
      if (ev.code >= 4400 && ev.code < 4500) return;  // not an approver (any more), or logged out
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }
  connect();
})();
