// The overview: job counts, the pool's capacity in use, and the last hour as two charts.
"use strict";

(() => {
  const { api, el, coalesce, follow, memory, bar, stateBadge, reportError } = jobyard;
  const HISTORY_REREAD_MS = 30000;
  const HOUR_S = 3600;
  const COLORS = { COMPLETED: "#2e7d32", FAILED: "#c62828", CANCELLED: "#757575" };
  const charts = {};

  async function loadStats() {
    try {
      const stats = await api("/api/v1/stats");
      document.querySelector("[data-counts]").replaceChildren(
        ...Object.entries(stats.counts).map(([state, n]) =>
          el("li", { dataset: { state, count: n } }, stateBadge(state), el("strong", {}, n)))
      );
      const { capacity, reserved } = stats;
      document.querySelector("[data-pool]").replaceChildren(
        bar("CPU", reserved.cpu, capacity.cpu),
        bar("Memory", reserved.memory_mb, capacity.memory_mb, memory),
        bar("GPUs", reserved.gpus, capacity.gpus)
      );
      const workers = Object.entries(stats.workers).map(([status, n]) => `${n} ${status}`);
      document.querySelector("[data-workers-summary]").textContent =
        `Queue depth ${stats.queue_depth} · workers: ${workers.join(", ") || "none"}`;
    } catch (error) {
      reportError(error);
    }
  }

  async function loadHistory() {
    try {
      const { minutes } = await api("/api/v1/stats/history");
      // The charts always span the hour that ends now: a point with no figures at its
      // start (a young pool has a few points only, and uPlot spans one point over years).
      const end = minutes.length ? Date.parse(minutes[minutes.length - 1].at) / 1000 : Date.now() / 1000;
      const at = [end - HOUR_S, ...minutes.map((p) => Date.parse(p.at) / 1000)];
      const figures = (read) => [null, ...minutes.map(read)];
      const states = Object.keys(COLORS);
      draw("finished", [at, ...states.map((s) => figures((p) => p.finished[s]))],
        states.map((s) => ({ label: s, stroke: COLORS[s], width: 2 })));
      draw("queue", [at, figures((p) => p.queue_depth)],
        [{ label: "QUEUED", stroke: "#1565c0", fill: "rgba(21,101,192,0.1)", width: 2 }]);
    } catch (error) {
      reportError(error);
    }
  }

  function draw(name, data, series) {
    const box = document.querySelector(`[data-chart="${name}"]`);
    if (charts[name]) {
      charts[name].setData(data);
      return;
    }
    const options = {
      width: Math.max(240, box.clientWidth),
      height: 180,
      series: [{}, ...series],
      axes: [{}, { size: 40 }],
      scales: { y: { range: (_, min, max) => [0, Math.max(1, max)] } },
    };
    charts[name] = new uPlot(options, data, box);
  }

  window.addEventListener("resize", coalesce(() => {
    for (const [name, chart] of Object.entries(charts)) {
      const box = document.querySelector(`[data-chart="${name}"]`);
      chart.setSize({ width: Math.max(240, box.clientWidth), height: 180 });
    }
  }, 200));

  const reloadStats = coalesce(loadStats, 1000);
  setInterval(loadHistory, HISTORY_REREAD_MS);
  loadHistory();
  follow({
    onChange: reloadStats,
    refetch: () => {
      reloadStats();
      loadHistory();
    },
  });
})();
