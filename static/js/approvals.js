// The header's pending-approvals count, kept current while the page is open.
(function () {
  "use strict";
  var badge = document.getElementById("pending-approvals");
  if (!badge) return;
  function refresh() {
    fetch(badge.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) badge.textContent = String(data.pending); })
      .catch(function () {});
  }
  setInterval(refresh, 15000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
})();
