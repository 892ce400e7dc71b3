/* Telemetry dashboards and rollout pages: draw every <canvas data-chart> from the JSON <script>
 * it names. Runs on page load and again after each htmx swap (a new time range or environment,
 * a rollout page's live part). A dataset marked hideInLegend (an interval's bound) stays out of
 * the legend. */
(function () {
  "use strict";
  var drawn = [];
  var palette = ["#4338ca", "#0e7490", "#b45309", "#15803d", "#b91c1c", "#7c3aed", "#64748b", "#db2777"];

  function options(canvas) {
    var stacked = canvas.dataset.stacked === "true";
    var unit = canvas.dataset.unit || "";
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: {
        x: { stacked: stacked },
        y: {
          stacked: stacked,
          beginAtZero: canvas.dataset.beginAtZero !== "false",
          grace: "5%",
          title: { display: Boolean(unit), text: unit }
        }
      },
      plugins: {
        legend: {
          position: "bottom",
          labels: {
            filter: function (item, data) {
              return !data.datasets[item.datasetIndex].hideInLegend;
            }
          }
        }
      }
    };
  }

  function draw() {
    if (typeof window.Chart === "undefined") {
      return;
    }
    drawn.forEach(function (chart) { chart.destroy(); });
    drawn = [];
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.dataset.source);
      if (!source) {
        return;
      }
      var data = JSON.parse(source.textContent);
      data.datasets.forEach(function (dataset, index) {
        var colour = palette[index % palette.length];
        dataset.backgroundColor = dataset.backgroundColor || colour;
        dataset.borderColor = dataset.borderColor || colour;
        if (dataset.type === "line") {
          dataset.borderDash = [6, 4];
          dataset.fill = false;
        }
      });
      var chartOptions = options(canvas);
      if (data.labels && data.labels.length === 1) {
        chartOptions.scales.x.offset = true; // a lone point (a rollout's first minute) sits mid-chart, off the axis
      }
      drawn.push(new window.Chart(canvas, { type: canvas.dataset.chart, data: data, options: chartOptions }));
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
