// Score history charts (uPlot), one per host, from the server's downsampled
// JSON (upgrades/charts.py). Each run is one shaded band (labelled #run; its
// steps on hover and in the list under the chart): a hundred step marks would
// hide the line. Clicking a band, or "Zoom to this run", shows that run alone
// with each step as a mark labelled with its number. Times are 24-hour in the
// server's zone, as everywhere.
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

  // Draws the runs as shaded bands (one per run, whatever its number of steps), or,
  // zoomed to one run, each of its steps as a mark labelled with the step's number.
  function drawMarks(bands, steps) {
    return function (u) {
      var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height, dpr = window.devicePixelRatio || 1;
      var items = steps || bands;
      ctx.save();
      ctx.font = (10 * dpr) + "px sans-serif";
      items.forEach(function (m) {
        var colour = STATUS_COLOUR[m.status] || "#0066cc";
        var x0 = Math.round(u.valToPos(Math.max(m.t, u.scales.x.min), "x", true));
        var end = m.end === null ? u.scales.x.max : Math.min(m.end, u.scales.x.max);
        var x1 = Math.round(u.valToPos(end, "x", true));
        ctx.globalAlpha = steps ? 0.12 : 0.18;
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
        ctx.fillText(steps ? String(m.order) : "#" + m.run, x0 + 2 * dpr, top + 10 * dpr);
      });
      ctx.restore();
      u.root.closest(".chart-card").dataset.marksDrawn = items.length;
    };
  }

  function span(short, m) { return short(m.t) + (m.end ? "–" + short(m.end) : " – now"); }

  // Under each chart: one entry per run (its steps inside, and a button to zoom to it).
  function markList(bands, marks, short, zoomTo) {
    var details = document.createElement("details");
    details.className = "chart-marks";
    var summary = document.createElement("summary");
    summary.textContent = bands.length + " run" + (bands.length === 1 ? "" : "s") + " (" + marks.length +
      " step" + (marks.length === 1 ? "" : "s") + ") in this range";
    details.appendChild(summary);
    var runs = document.createElement("ul");
    bands.forEach(function (band) {
      var item = document.createElement("li");
      item.className = "run-group";
      item.dataset.run = band.run;
      var group = document.createElement("details");
      var head = document.createElement("summary");
      var a = document.createElement("a");
      a.href = "/runs/" + band.run + "/";
      a.textContent = "Run #" + band.run + " " + band.runbook;
      head.appendChild(a);
      head.appendChild(document.createTextNode(" · " + band.label + " · " + span(short, band) + " · " +
        band.steps + " step" + (band.steps === 1 ? "" : "s") + " "));
      var zoom = document.createElement("button");
      zoom.type = "button";
      zoom.className = "zoom-run";
      zoom.textContent = "Zoom to this run";
      zoom.addEventListener("click", function (e) { e.preventDefault(); zoomTo(band.run); });
      head.appendChild(zoom);
      group.appendChild(head);
      var list = document.createElement("ol");
      marks.filter(function (m) { return m.run === band.run; }).forEach(function (m) {
        var li = document.createElement("li");
        li.className = "mark";
        var link = document.createElement("a");
        link.href = "/runs/" + m.run + "/#step-" + m.order;
        link.textContent = "step " + m.order + ": " + m.title;
        li.appendChild(link);
        li.appendChild(document.createTextNode(" · " + m.label + " · " + span(short, m)));
        list.appendChild(li);
      });
      group.appendChild(list);
      item.appendChild(group);
      runs.appendChild(item);
    });
    details.appendChild(runs);
    return details;
  }

  // The run (or, zoomed, the step) under the pointer, said in words under the chart.
  function pointed(items, t) {
    var found = null;
    items.forEach(function (m) {
      if (m.t <= t && (m.end === null || t <= m.end)) { found = m; }
    });
    return found;
  }

  // Draws the charts for ``data`` into ``box``, replacing what was there; ``zoom``:
  // the run to show alone, its steps marked (null: the whole range, one band per run).
  function render(box, data, zone, zoom, zoomTo) {
    var band = zoom === null ? null : data.runs.filter(function (b) { return b.run === zoom; })[0] || null;
    var axisFmt = formatter(zone, data.range === "week" || (band !== null && data.range !== "hour"));
    var full = formatter(zone, true);
    var range = [data.start, data.end];
    if (band) {
      var end = band.end === null ? data.end : band.end;
      var pad = Math.max(30, (end - band.t) * 0.05);
      range = [band.t - pad, end + pad];
    }
    box.querySelectorAll(".chart-card").forEach(function (card) { if (card.plot) { card.plot.destroy(); } });
    box.textContent = "";
    box.dataset.zoom = band ? band.run : "";
    if (band) {
      var bar = document.createElement("p");
      bar.className = "chart-zoom";
      bar.textContent = "Run #" + band.run + " " + band.runbook + " (" + band.label + "), " + span(full, band) + " ";
      var back = document.createElement("button");
      back.type = "button";
      back.className = "zoom-out";
      back.textContent = "Show the whole range";
      back.addEventListener("click", function () { zoomTo(null); });
      bar.appendChild(back);
      box.appendChild(bar);
    }
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
      var said = document.createElement("p");
      said.className = "chart-pointed";
      said.textContent = "\u00a0";
      card.appendChild(said);
      box.appendChild(card);
      var mine = function (m) { return m.host === null || m.host === host.id; };
      var marks = data.marks.filter(mine);
      var bands = data.runs.filter(function (b) { return b.hosts.some(function (h) { return h === null || h === host.id; }); });
      var steps = band ? marks.filter(function (m) { return m.run === band.run; }) : null;
      var hasData = host.score.some(function (v) { return v !== null; });
      var width = Math.max(240, card.clientWidth - 16);
      card.plot = new window.uPlot({
        width: width, height: 150,
        legend: { show: true, live: true },
        cursor: { y: false, drag: { x: false, y: false } },
        tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1000), zone); },
        scales: { x: { time: true, range: range },
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
        hooks: {
          draw: [drawMarks(bands, steps)],
          setCursor: [function (u) {
            var m = u.cursor.left >= 0 ? pointed(steps || bands, u.posToVal(u.cursor.left, "x")) : null;
            said.textContent = !m ? "\u00a0" : steps
              ? "Step " + m.order + ": " + m.title + " · " + m.label + " · " + span(full, m)
              : "Run #" + m.run + " " + m.runbook + " · " + m.label + " · " + m.steps + " steps · " +
                span(full, m) + " (click to zoom)";
          }],
        },
      }, [data.x, host.score], plotBox);
      card.plot.over.addEventListener("click", function () {
        var u = card.plot;
        if (steps || u.cursor.left < 0) { return; }
        var m = pointed(bands, u.posToVal(u.cursor.left, "x"));
        if (m) { zoomTo(m.run); }
      });
      if (!hasData) {
        var empty = document.createElement("p");
        empty.className = "chart-empty";
        empty.textContent = "No samples in this range.";
        card.appendChild(empty);
      }
      card.appendChild(markList(bands, marks, axisFmt, zoomTo));
    });
  }

  // A chart set that loads ``url?range=...`` and can reload (debounced).
  function charts(box) {
    var range = "hour", timer = null, asked = 0, zoom = null, last = null;
    function draw() { render(box, last, box.dataset.zone || "UTC", zoom, zoomTo); }
    function zoomTo(run) { zoom = run; if (last) { draw(); } }
    function load() {
      var n = ++asked;
      return fetch(box.dataset.url + "?range=" + range, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (data) { if (n === asked) { last = data; draw(); } })
        .catch(function () { /* the next reload tries again */ });
    }
    function setRange(name) { range = name; zoom = null; return load(); }
    function reloadSoon(ms) {
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; load(); }, ms);
    }
    window.addEventListener("resize", function () {
      box.querySelectorAll(".chart-card").forEach(function (card) {
        if (card.plot) { card.plot.setSize({ width: Math.max(240, card.clientWidth - 16), height: 150 }); }
      });
    });
    return { load: load, setRange: setRange, reloadSoon: reloadSoon, zoomTo: zoomTo,
             range: function () { return range; } };
  }

  window.heportalCharts = { charts: charts };
})();
