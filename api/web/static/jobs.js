// The jobs page: one page of jobs at a time (the API's cursor paging, newest first), the
// filters in the address so a view can be shared, and rows kept current by the feed.
"use strict";

(() => {
  const { api, el, isStale, eventApplies, copyApplies, coalesce, follow, duration, secondsSince, resources, stateBadge,
    reportError, isAdmin, isOver, mayRetry } = jobyard;
  const PAGE_SIZE = 50;
  const form = document.querySelector("[data-filters]");
  const tbody = document.querySelector("[data-jobs] tbody");
  const summary = document.querySelector("[data-summary]");
  const firstButton = document.querySelector("[data-first]");
  const nextButton = document.querySelector("[data-next]");
  let cursor = null; // the page shown: null for the newest
  let nextCursor = null;

  function filters() {
    const params = new URLSearchParams(location.search);
    const chosen = {};
    for (const name of ["state", "owner", "label"]) {
      const value = params.get(name);
      if (value) chosen[name] = value;
    }
    return chosen;
  }

  function fillForm() {
    for (const [name, value] of Object.entries(filters())) {
      if (form.elements[name]) form.elements[name].value = value;
    }
    for (const link of document.querySelectorAll("[data-export]")) {
      const params = new URLSearchParams({ ...filters(), format: link.dataset.export });
      link.href = "/api/v1/jobs/export?" + params;
    }
  }

  async function load() {
    const params = new URLSearchParams({ ...filters(), limit: PAGE_SIZE });
    if (cursor !== null) params.set("cursor", cursor);
    try {
      const page = await api("/api/v1/jobs?" + params);
      tbody.replaceChildren(...page.jobs.map(row));
      for (const job of page.jobs) {
        if (isStale(job)) refresh(job.id);
        else jobyard.hear(job.id, job.version);
      }
      nextCursor = page.next_cursor;
      nextButton.disabled = nextCursor === null;
      firstButton.disabled = cursor === null;
      showSummary(page.counts, page.jobs.length);
    } catch (error) {
      reportError(error);
    }
  }

  function showSummary(counts, shown) {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const parts = Object.entries(counts).filter(([, n]) => n).map(([s, n]) => `${n} ${s}`);
    summary.textContent = `${shown} shown · ${total} stored` +
      (parts.length ? ` (${parts.join(", ")})` : "") + (isAdmin ? "" : " · your jobs");
  }

  function row(job) {
    const ran = job.started_at ? duration(secondsSince(job.started_at, job.finished_at)) : "";
    return el(
      "tr",
      { dataset: { jobId: job.id, state: job.state, version: job.version } },
      el("td", {}, el("a", { href: "/jobs/" + encodeURIComponent(job.id) }, el("code", {}, job.id))),
      el("td", { class: "name" }, job.name || ""),
      isAdmin ? el("td", {}, job.owner) : null,
      el("td", {}, stateBadge(job.state), job.cancel_requested && !isOver(job.state) ? " cancelling" : ""),
      el("td", {}, job.reason || (job.state === "QUEUED" ? job.pending_reason || "" : "")),
      el("td", { class: "number" }, job.priority),
      el("td", {}, resources(job.resources)),
      el("td", {}, job.worker_id || ""),
      el("td", { title: job.created_at }, duration(secondsSince(job.created_at))),
      el("td", {}, ran),
      el("td", { class: "actions" }, actions(job))
    );
  }

  function actions(job) {
    const buttons = [];
    if (!isOver(job.state) && !job.cancel_requested) {
      buttons.push(el("button", { type: "button", onclick: () => act(job.id, "cancel") }, "Cancel"));
    }
    if (mayRetry(job.state)) {
      buttons.push(el("button", { type: "button", onclick: () => act(job.id, "retry") }, "Retry"));
    }
    return buttons;
  }

  async function act(id, action) {
    try {
      const job = await api(`/api/v1/jobs/${encodeURIComponent(id)}/${action}`, { method: "POST" });
      replaceRow(job);
    } catch (error) {
      reportError(error);
    }
  }

  function replaceRow(job) {
    const current = rowOf(job.id);
    if (current && copyApplies(current, job)) current.replaceWith(row(job));
  }

  // Rows on the page are refetched one by one; a job not on it (a new one) means the
  // newest page has changed, so it is reloaded, at most once a second. The counts are
  // reread with every change, from a list of one.
  const reload = coalesce(load, 1000);
  const recount = coalesce(async () => {
    try {
      const page = await api("/api/v1/jobs?" + new URLSearchParams({ ...filters(), limit: 1 }));
      showSummary(page.counts, tbody.childElementCount);
    } catch (error) {
      reportError(error);
    }
  }, 1000);
  const pending = new Set();
  function refresh(id) {
    pending.add(id);
    refreshRows();
  }
  const refreshRows = coalesce(async () => {
    const ids = [...pending];
    pending.clear();
    await Promise.all(ids.map(async (id) => {
      try {
        replaceRow(await api("/api/v1/jobs/" + encodeURIComponent(id)));
      } catch (error) {
        if (error.status !== 404) reportError(error);
      }
    }));
  }, 250);

  function onChange(change) {
    if (!change.kind.startsWith("job")) return;
    const current = rowOf(change.id);
    if (!current && cursor === null && change.kind === "job") {
      reload(); // the newest page, counts and all
      return;
    }
    recount();
    if (!current) return;
    if (change.kind === "job_deleted") {
      current.remove();
      return;
    }
    if (!eventApplies(current, change)) return;
    if (change.kind === "job") {
      // The state at once; the other columns (worker, duration, buttons) with the refetch.
      current.dataset.state = change.to;
      current.dataset.version = change.version;
      const badge = current.querySelector(".badge");
      if (badge) badge.replaceWith(stateBadge(change.to));
    }
    refresh(change.id);
  }

  function rowOf(id) {
    return tbody.querySelector(`tr[data-job-id="${CSS.escape(id)}"]`);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const name of ["state", "owner", "label"]) {
      const field = form.elements[name];
      if (field && field.value.trim()) params.set(name, field.value.trim());
    }
    history.replaceState(null, "", params.toString() ? "?" + params : location.pathname);
    cursor = null;
    fillForm();
    load();
  });
  firstButton.addEventListener("click", () => { cursor = null; load(); });
  nextButton.addEventListener("click", () => { cursor = nextCursor; load(); });

  fillForm();
  follow({ onChange, refetch: load });
})();
