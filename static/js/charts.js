// Score history charts (uPlot), one per host, from the server's downsampled
// JSON (upgrades/charts.py). Run steps are drawn as vertical marks (shaded
// while they ran, labelled with the step's number) and listed as links under
// each chart. Times are 24-hour in the server's zone, as everywhere.
(function () {
  "use strict";
  var STATUS_COLOUR = { succeeded: "#3e8635", failed: "#c9190b", interrupted: "#c9190b", cancelled: "#c9190b",
                        rejected: "#c9190b", running: "#f0ab00", waiting: "#f0ab00", skipped: "#6a6e73" };

  function formatter(zone, withDate) {
    var opts = { timeZone: zone, hour12: false, hour: "2-digit", minute: "2-digit" };
    if (withDate) { opts.month = "2-digit"; opts.day = "2-digit"; }
    var f = new Intl.DateTimeFormat("en-CA", opts);
    return function (ts) { return f.format(new Date(ts * 1000)).replace(",", ""); };
  }

  function drawMarks(marks) {
    return function (u) {
      var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height, dpr = window.devicePixelRatio || 1;
      ctx.save();
      ctx.font = (10 * dpr) + "px sans-serif";
      marks.forEach(function (m) {
        var colour = STATUS_COLOUR[m.status] || "#0066cc";
        var x0 = Math.round(u.valToPos(Math.max(m.t, u.scales.x.min), "x", true));
        var end = m.end === null ? u.scales.x.max : Math.min(m.end, u.scales.x.max);
        var x1 = Math.round(u.valToPos(end, "x", true));
        ctx.globalAlpha = 0.12;
        ctx.fillStyle = colour;
        ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
        ctx.globalAlpha = 1;
        ctx.strokeStyle = colour;
        ctx.lineWidth = dpr;
        ctx.beginPath();
        ctx.moveTo(x0 + 0.5, top);
        ctx.lineTo(x0 + 0.5, top + height);
        ctx.stroke();
        ctx.fillStyle = colour;
        ctx.fillText(String(m.order), x0 + 2 * dpr, top + 10 * dpr);
      });
      ctx.restore();
      u.root.closest(".chart-card").dataset.marksDrawn = marks.length;
    };
  }

  function markList(marks, short) {
    var details = document.createElement("details");
    details.className = "chart-marks";
    var summary = document.createElement("summary");
    summary.textContent = marks.length + " run step" + (marks.length === 1 ? "" : "s") + " in this range";
    details.appendChild(summary);
    var list = document.createElement("ol");
    marks.forEach(function (m) {
      var li = document.createElement("li");
      li.className = "mark";
      var a = document.createElement("a");
      a.href = "/runs/" + m.run + "/#step-" + m.order;
      a.textContent = "Run #" + m.run + " " + m.runbook + ", step " + m.order + ": " + m.title;
      li.appendChild(a);
      li.appendChild(document.createTextNode(" · " + m.status + " · " + short(m.t) +
        (m.end ? "–" + short(m.end) : " – now")));
      list.appendChild(li);
    });
    details.appendChild(list);
    return details;
  }

  // Draws the charts for ``data`` into ``box``, replacing what was there.
  function render(box, data, zone) {
    var axisFmt = formatter(zone, data.range === "week");
    var full = formatter(zone, true);
    box.querySelectorAll(".chart-card").forEach(function (card) { if (card.plot) { card.plot.destroy(); } });
    box.textContent = "";
    data.hosts.forEach(function (host) {
      var card = document.createElement("div");
      card.className = "chart-card";
      card.dataset.host = host.id;
      var title = document.createElement("h3");
      title.textContent = host.name;
      card.appendChild(title);
      var plotBox = document.createElement("div");
      plotBox.className = "chart";
      card.appendChild(plotBox);
      box.appendChild(card);
      var marks = data.marks.filter(function (m) { return m.host === null || m.host === host.id; });
      var hasData = host.score.some(function (v) { return v !== null; });
      var width = Math.max(240, card.clientWidth - 16);
      card.plot = new window.uPlot({
        width: width, height: 150,
        legend: { show: true, live: true },
        cursor: { y: false },
        tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1000), zone); },
        scales: { x: { time: true, range: [data.start, data.end] },
                  y: { range: [0, Math.max(data.full_score, 100)] } },
        axes: [
          { values: function (u, splits) { return splits.map(axisFmt); }, size: 28, font: "11px sans-serif" },
          { size: 42, font: "11px sans-serif", values: function (u, splits) { return splits.map(String); } },
        ],
        series: [
          { label: "time", value: function (u, ts) { return ts === null ? "–" : full(ts); } },
          { label: "score", stroke: "#0066cc", width: 1.5, fill: "rgba(0,102,204,0.08)",
            paths: window.uPlot.paths.stepped({ align: 1 }), points: { show: false },
            value: function (u, v) { return v === null ? "–" : String(v); } },
        ],
        hooks: { draw: [drawMarks(marks)] },
      }, [data.x, host.score], plotBox);
      if (!hasData) {
        var empty = document.createElement("p");
        empty.className = "chart-empty";
        empty.textContent = "No samples in this range.";
        card.appendChild(empty);
      }
      card.appendChild(markList(marks, axisFmt));
    });
  }

  // A chart set that loads ``url?range=...`` and can reload (debounced).
  function charts(box) {
    var range = "hour", timer = null, asked = 0;
    function load() {
      var n = ++asked;
      return fetch(box.dataset.url + "?range=" + range, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (data) { if (n === asked) { render(box, data, box.dataset.zone || "UTC"); } })
        .catch(function () { /* the next reload tries again */ });
    }
    function setRange(name) { range = name; return load(); }
    function reloadSoon(ms) {
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; load(); }, ms);
    }
    window.addEventListener("resize", function () {
      box.querySelectorAll(".chart-card").forEach(function (card) {
        if (card.plot) { card.plot.setSize({ width: Math.max(240, card.clientWidth - 16), height: 150 }); }
      });
    });
    return { load: load, setRange: setRange, reloadSoon: reloadSoon, range: function () { return range; } };
  }

  window.heportalCharts = { charts: charts };
})();
