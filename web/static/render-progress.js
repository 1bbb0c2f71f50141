/* Chorus: smooth progress while a PDF renders.
   Progressive enhancement only: without JavaScript the page refreshes itself (a meta
   refresh inside <noscript>). With it, this polls the render's JSON status once a second,
   moves the <progress> bar, and reloads the page once the render has finished, so the
   download link (or the error) appears. The status text, a live region, changes only
   every 10% so that screen readers are not flooded. */
(function () {
  "use strict";
  var panel = document.getElementById("render");
  var url = panel && panel.getAttribute("data-status-url");
  var bar = document.getElementById("render-progress");
  var text = document.getElementById("render-status");
  if (!url || !window.fetch) { return; }
  var spoken = text ? text.textContent : "";
  var failures = 0;

  function show(status) {
    if (bar && status.total) {
      bar.max = status.total;
      bar.value = status.done;
      bar.textContent = status.percent + "%";
    }
    if (text && status.text !== spoken) {
      var tens = function (s) { return s.replace(/(\d+)%/, function (_m, n) { return Math.floor(n / 10) * 10 + "%"; }); };
      if (tens(status.text) !== tens(spoken)) {
        text.textContent = status.text;
        spoken = status.text;
      }
    }
  }

  function poll() {
    window.fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (status) {
        failures = 0;
        if (status.finished) { window.location.reload(); return; }
        show(status);
        window.setTimeout(poll, 1000);
      })
      .catch(function () {
        failures += 1;
        if (failures < 5) { window.setTimeout(poll, 2000 * failures); return; }
        window.location.reload(); /* the page itself says where things stand */
      });
  }

  window.setTimeout(poll, 1000);
}());
