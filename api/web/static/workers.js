// The workers page: a card per worker. The feed carries status changes and the jobs that
// reserve and free capacity; heartbeats' figures are not in it (their volume), so the
// page also rereads the list every REREAD_MS.
"use strict";

(() => {
  const { api, el, coalesce, follow, duration, secondsSince, memory, bar, reportError,
    isAdmin } = jobyard;
  const REREAD_MS = 10000;
  const list = document.querySelector("[data-workers]");
  const summary = document.querySelector("[data-summary]");

  async function load() {
    try {
      const { workers } = await api("/api/v1/workers");
      list.replaceChildren(...workers.map(card));
      const alive = workers.filter((w) => w.status === "alive").length;
      summary.textContent = `${workers.length} worker${workers.length === 1 ? "" : "s"}, ${alive} alive`;
    } catch (error) {
      reportError(error);
    }
  }
  const reload = coalesce(load, 500);

  function card(worker) {
    const { capacity, reserved } = worker;
    const labels = Object.entries(worker.labels || {}).map(([k, v]) => el("li", {}, `${k}=${v}`));
    const metrics = Object.entries(worker.metrics || {})
      .flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, String(value))]);
    return el(
      "article",
      { class: "card worker", dataset: { workerId: worker.id, status: worker.status } },
      el("h2", {}, worker.hostname, " ", el("span", { class: "badge status-" + worker.status }, worker.status)),
      el("p", { class: "muted" }, el("code", {}, worker.id), ` · ${worker.executor}`,
        worker.allows_network ? " · network allowed" : ""),
      labels.length ? el("ul", { class: "labels", "aria-label": "Labels" }, labels) : null,
      el("div", { class: "bars" },
        bar("CPU", reserved.cpu, capacity.cpu),
        bar("Memory", reserved.memory_mb, capacity.memory_mb, memory),
        capacity.gpus ? bar("GPUs", reserved.gpus, capacity.gpus) : null,
        bar("Job slots", reserved.jobs, worker.max_parallel_jobs)),
      el("p", {}, "Running: ", worker.running_jobs.length
        ? worker.running_jobs.map((id) => [el("a", { href: "/jobs/" + encodeURIComponent(id) }, el("code", {}, id)), " "])
        : "nothing"),
      el("p", {}, "Last heartbeat ", el("span", { dataset: { lastSeen: worker.last_seen } }, ago(worker.last_seen))),
      metrics.length ? el("details", {}, el("summary", {}, "Host metrics"), el("dl", { class: "facts" }, metrics)) : null,
      isAdmin && worker.status === "alive"
        ? el("button", { type: "button", onclick: () => drain(worker.id) }, "Drain")
        : null
    );
  }

  function ago(iso) {
    return iso ? duration(secondsSince(iso)) + " ago" : "never";
  }

  async function drain(id) {
    try {
      await api(`/api/v1/workers/${encodeURIComponent(id)}/drain`, { method: "POST" });
      reload();
    } catch (error) {
      reportError(error);
    }
  }

  function onChange(change) {
    // A worker's status, or a job that took or gave back a worker's capacity.
    if (change.kind.startsWith("worker") || change.kind === "job") reload();
  }

  setInterval(() => {
    for (const node of list.querySelectorAll("[data-last-seen]")) node.textContent = ago(node.dataset.lastSeen);
  }, 1000);
  setInterval(load, REREAD_MS);
  follow({ onChange, refetch: reload });
})();
