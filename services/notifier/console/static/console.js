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
// Charts: each canvas[data-chart] draws the {label, value} rows in the JSON script beside it.
(function () {
  "use strict";
  function draw() {
    if (!window.Chart) return;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var rows = JSON.parse(document.getElementById(canvas.id + "-data").textContent);
      new window.Chart(canvas, {
        type: canvas.dataset.chart,
        data: {
          labels: rows.map(function (r) { return r.label; }),
          datasets: [{ data: rows.map(function (r) { return r.value; }), backgroundColor: "#2e90fa", borderColor: "#1570ef" }],
        },
        options: { animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
      });
    });
  }
  if (document.readyState === "complete") draw();
  else window.addEventListener("load", draw);
})();
