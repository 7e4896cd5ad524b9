// The console's small behaviours: CSRF header on htmx requests, live queue over SSE, countdowns.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]');
  document.addEventListener("htmx:configRequest", function (event) {
    if (csrf) event.detail.headers["X-CSRF-Token"] = csrf.content;
  });
  var queue = document.getElementById("queue");
  if (queue && window.EventSource) {
    var source = new EventSource(queue.dataset.live);
    source.addEventListener("queue", function () {
      document.body.dispatchEvent(new Event("queue-changed"));
    });
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var left = Math.round((Date.parse(el.getAttribute("datetime")) - now) / 1000);
      var sign = left < 0 ? "-" : "";
      left = Math.abs(left);
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = sign + h + "h " + String(m).padStart(2, "0") + "m " + String(s).padStart(2, "0") + "s";
      el.title = el.getAttribute("datetime");
    });
  }
  tick();
  setInterval(tick, 1000);
})();
