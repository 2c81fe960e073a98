// Cluster page: HA state per host, replaced by each "ha.update" message.
(function () {
  "use strict";
  var table = document.getElementById("ha-hosts");
  var banner = document.getElementById("conn-banner");
  var retry = 500;

  function yesno(v) { return v ? "yes" : "no"; }

  function apply(ev) {
    document.getElementById("maintenance-mode").textContent = ev.maintenance_mode;
    document.getElementById("polled-at").textContent = ev.polled_at ? new Date(ev.polled_at).toLocaleTimeString() : "never";
    var err = document.getElementById("poll-error");
    err.textContent = ev.poll_error || "";
    err.hidden = !ev.poll_error;
    ev.hosts.forEach(function (h) {
      var row = table.querySelector('tr[data-host="' + h.id + '"]');
      if (!row) { return; }
      row.querySelector(".ha-state").textContent = h.state;
      row.querySelector(".ha-score").textContent = h.score === null ? "" : h.score;
      row.querySelector(".ha-live").textContent = yesno(h.live);
      row.querySelector(".ha-local").textContent = yesno(h.local_maintenance);
      row.querySelector(".ha-vm").textContent = h.engine_vm_here ? "here" : "";
      row.classList.toggle("stale", !h.live);
    });
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + table.dataset.wsPath);
    ws.onopen = function () { banner.hidden = true; retry = 500; };
    ws.onmessage = function (msg) {
      var ev = JSON.parse(msg.data);
      if (ev.type === "ha.update") { apply(ev); }
    };
    ws.onclose = function () {
      banner.hidden = false;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }
  connect();
})();
