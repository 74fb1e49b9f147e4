/* The KPI dashboards: draws each <canvas data-chart="NAME"> with Chart.js from the figures the
   page carries in <script type="application/json" id="dashboard-data"> (rendered by the server,
   the same numbers as each chart's CSV). No inline script: the console's CSP forbids it. */
(() => {
  "use strict";
  const source = document.getElementById("dashboard-data");
  if (!source || typeof Chart === "undefined") return;
  const figures = JSON.parse(source.textContent);
  const css = getComputedStyle(document.body);
  Chart.defaults.font.family = css.fontFamily;
  Chart.defaults.color = css.color;
  const DAY = /^\d{4}-\d{2}-\d{2}$/;
  const BAR_ROOM = 24; // pixels per bar of a horizontal bar chart

  const percent = (value) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`);

  /** Seconds as the reader's "12 s", "4.5 min" or "2.3 h" (units: the server's translations). */
  const duration = (units) => (seconds) => {
    if (seconds === null || seconds === undefined) return "—";
    const [unit, n] = seconds < 60 ? ["s", +seconds.toFixed(seconds < 10 ? 1 : 0)]
      : seconds < 3600 ? ["min", +(seconds / 60).toFixed(1)] : ["h", +(seconds / 3600).toFixed(1)];
    return units[unit].replace("%(n)s", n);
  };

  /** How a figure writes its values: a percentage, a duration, or a plain number. */
  const formatter = (figure) => (figure.percent ? percent : figure.units ? duration(figure.units) : null);

  /** The Chart.js configuration of one figure ({kind, labels, datasets, percent, units, ...}). */
  const configure = (figure) => {
    const format = formatter(figure);
    const [along, across] = figure.horizontal ? ["y", "x"] : ["x", "y"];
    return {
      type: figure.kind,
      data: {
        labels: figure.labels,
        datasets: figure.datasets.map((set) => ({ ...set, spanGaps: false, pointRadius: 3, borderWidth: 2,
                                                  maxBarThickness: 48 })),
      },
      options: {
        indexAxis: along,
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false, axis: along },
        scales: {
          [along]: { ticks: {
            autoSkip: !figure.horizontal, maxRotation: 0, autoSkipPadding: 12,
            // Days read as 11-24 on the axis; the tooltip gives the whole date.
            callback(value) { const label = this.getLabelForValue(value); return DAY.test(label) ? label.slice(5) : label; },
          } },
          [across]: {
            beginAtZero: figure.from_zero,
            // A rate up to 100%; a duration at least up to a minute (not ticks of 0.1 s).
            ...(figure.percent ? { suggestedMax: 1 } : figure.units ? { suggestedMax: 60 } : {}),
            ticks: { maxRotation: 0, ...(format ? { callback: format } : { precision: 0 }) },
          },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: format ? { callbacks: { label: (item) => `${item.dataset.label}: ${format(item.raw)}` } } : {},
        },
      },
    };
  };

  document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    const figure = figures[canvas.dataset.chart];
    if (!figure) return;
    if (figure.horizontal) {  // a bar per source: the box grows with them (CSSOM, allowed by the CSP)
      const box = canvas.parentElement;
      box.style.height = `${Math.max(box.clientHeight, figure.labels.length * BAR_ROOM + 60)}px`;
    }
    new Chart(canvas, configure(figure));
  });
})();
