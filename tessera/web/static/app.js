// Tessera console: charts from data-series attributes, copy buttons. No framework;
// htmx does the live parts (the debugger, the segment editor, import progress).
(function () {
  "use strict";

  const palette = ["#3355cc", "#22a06b", "#e8a33d", "#c0392b", "#8e44ad", "#16a2b8",
                   "#7f8c8d", "#d35400", "#2c3e50", "#27ae60"];

  function drawCharts(root) {
    if (typeof Chart === "undefined") return;
    root.querySelectorAll("canvas[data-series]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      canvas.dataset.drawn = "1";
      const series = JSON.parse(canvas.dataset.series);
      const line = canvas.dataset.chart === "line";
      series.datasets.forEach(function (set, i) {
        // A colour the server chose (one per source, one per channel) stays that colour.
        const colour = set.backgroundColor || palette[i % palette.length];
        set.backgroundColor = colour;
        set.borderColor = colour;
        if (line) { set.fill = false; set.tension = 0.2; set.pointRadius = 2; }
      });
      const stacked = canvas.dataset.stacked === "true";
      new Chart(canvas, {
        type: line ? "line" : "bar",
        data: series,
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: { x: { stacked: stacked }, y: { stacked: stacked, beginAtZero: true } },
          plugins: { legend: { position: "bottom" } },
        },
      });
    });
  }

  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (button.dataset.bound) return;
      button.dataset.bound = "1";
      button.addEventListener("click", function () {
        const target = document.querySelector(button.dataset.copy);
        if (!target) return;
        const text = target.textContent;
        const done = function () { button.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { select(target); });
        } else {
          select(target);
        }
      });
    });
  }

  // Without clipboard access (plain http on another host): select the text for Ctrl+C.
  function select(element) {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Forms that destroy something ask first.
  document.addEventListener("submit", function (event) {
    const message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // Overlap cells shade by their share. Set through the CSSOM: the Content-Security-Policy
  // refuses style="" attributes in the markup.
  function shades(root) {
    root.querySelectorAll("[data-share]").forEach(function (cell) {
      cell.style.setProperty("--share", parseFloat(cell.dataset.share) + "%");
    });
  }

  // "Go back" links: back in history when there is one, else their href.
  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("a[data-back]");
    if (link && window.history.length > 1) { event.preventDefault(); window.history.back(); }
  });

  // Polling that follows a checkbox (the live debugger): no request while it is unticked.
  // (htmx's own [condition] triggers need eval, which the policy refuses.)
  document.addEventListener("htmx:beforeRequest", function (event) {
    const selector = event.detail.elt.dataset && event.detail.elt.dataset.pollWhile;
    const box = selector && document.querySelector(selector);
    if (box && !box.checked) event.preventDefault();
  });

  function init(root) { drawCharts(root); copyButtons(root); shades(root); }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSwap", function (event) { init(event.target); });
})();
