/* Chorus: live department suggestions while the organiser describes the issue.
   Progressive enhancement only: without JavaScript the "Suggest departments" button
   asks the server for the same list. */
(function () {
  "use strict";
  var input = document.getElementById("suggest_text");
  var target = document.getElementById("live-suggestions");
  if (!input || !target || !window.fetch) { return; }
  var url = input.getAttribute("data-suggest-url");
  var timer = null;
  var latest = 0;
  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      var query = input.value.trim();
      var ticket = ++latest;
      if (query.length < 3) { target.innerHTML = ""; return; }
      window.fetch(url + "?fragment=1&q=" + encodeURIComponent(query), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : ""; })
        .then(function (html) { if (ticket === latest) { target.innerHTML = html; } })
        .catch(function () { /* the button still works */ });
    }, 400);
  });
}());
