// What every page shares: calling the API with the session cookie, building elements
// without innerHTML (every value is the submitter's text), and following the change feed.
//
// The feed's rule, the one that keeps a finished job from showing as running: an update
// is applied only when its version is newer than the one shown (see Versions), and whenever
// the page may have missed events (the first connection, every reconnection, a `reset`
// event, the browser coming back online) it refetches what it shows.
"use strict";

const jobyard = (() => {
  const CSRF_HEADER = "X-Jobyard-CSRF";
  const FEED_URL = "/api/v1/events/stream";
  const RECONNECT_MS = 2000;
  // The state rules, as the server put them on <body> from shared/states.py.
  const TERMINAL_STATES = document.body.dataset.terminalStates.split(" ");
  const RETRYABLE_STATES = document.body.dataset.retryableStates.split(" ");
  const isOver = (state) => TERMINAL_STATES.includes(state);
  const mayRetry = (state) => RETRYABLE_STATES.includes(state);

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers[CSRF_HEADER] = "1";
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      toLogin();
      throw new ApiError(401, "the session has ended");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : response.statusText;
      throw new ApiError(response.status, message);
    }
    return data;
  }

  function toLogin() {
    location.assign("/login?next=" + encodeURIComponent(location.pathname));
  }

  // el("td", {class: "x", dataset: {jobId: id}}, "text", child): an element, its text
  // always set as text.
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // Versions. An element showing a job carries data-version, the version its figures are
  // from. An event (a state change) is applied only when newer than that; a whole copy of
  // the job (a GET) when at least as new, since it holds everything the event said. And
  // the page remembers the newest version it has heard of per job: a copy older than that
  // (a list fetched while the job moved on) is stale, and is fetched again.
  const heard = new Map();
  function hear(id, version) {
    if (!(heard.get(id) >= version)) heard.set(id, version);
  }
  function isStale(job) {
    return (heard.get(job.id) ?? -1) > job.version;
  }
  function shownVersion(element) {
    return element.dataset.version === undefined ? -1 : Number(element.dataset.version);
  }
  function eventApplies(element, change) {
    hear(change.id, change.version);
    return change.version > shownVersion(element);
  }
  function copyApplies(element, job) {
    hear(job.id, job.version);
    return job.version >= shownVersion(element);
  }

  // Runs fn at most once per `ms`, however often it is asked for.
  function coalesce(fn, ms) {
    let timer = null;
    return () => {
      if (timer !== null) return;
      timer = setTimeout(() => {
        timer = null;
        fn();
      }, ms);
    };
  }

  function showLive(status) {
    const badge = document.querySelector("[data-live]");
    if (!badge) return;
    badge.dataset.live = status;
    badge.textContent = status;
  }

  // Follows the change feed: onChange(event) for each event, refetch() whenever the page
  // may have missed some. EventSource reconnects by itself, sending Last-Event-ID; when
  // it gives up (an error status such as 503) this reopens it after RECONNECT_MS.
  function follow({ onChange, refetch }) {
    let source = null;
    let lastId = null;
    let retry = null;

    function open() {
      close();
      const query = lastId ? "?last_event_id=" + encodeURIComponent(lastId) : "";
      source = new EventSource(FEED_URL + query);
      source.onopen = () => {
        showLive("live");
        refetch();
      };
      source.onmessage = (message) => {
        if (message.lastEventId) lastId = message.lastEventId;
        let change;
        try {
          change = JSON.parse(message.data);
        } catch (_) {
          return;
        }
        onChange(change);
      };
      source.addEventListener("reset", (message) => {
        if (message.lastEventId) lastId = message.lastEventId;
        refetch();
      });
      source.onerror = () => {
        showLive(navigator.onLine ? "reconnecting" : "offline");
        if (source.readyState === EventSource.CLOSED) {
          retry = setTimeout(open, RECONNECT_MS);
        }
      };
    }

    function close() {
      clearTimeout(retry);
      if (source) source.close();
      source = null;
    }

    // A connection can outlive the network without noticing: start afresh when it is back.
    window.addEventListener("offline", () => {
      close();
      showLive("offline");
    });
    window.addEventListener("online", open);
    open();
  }

  // Figures as people read them.
  function duration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
    seconds = Math.max(0, seconds);
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 120) return Math.round(seconds) + " s";
    if (seconds < 7200) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h";
    return Math.round(seconds / 86400) + " d";
  }

  function secondsSince(iso, until) {
    if (!iso) return null;
    const end = until ? Date.parse(until) : Date.now();
    return (end - Date.parse(iso)) / 1000;
  }

  function memory(mb) {
    return mb >= 1024 ? (mb / 1024).toFixed(mb % 1024 ? 1 : 0) + " GiB" : mb + " MiB";
  }

  function resources(r) {
    if (!r) return "";
    const parts = [r.cpu + " CPU", memory(r.memory_mb)];
    if (r.gpus) parts.push(r.gpus + " GPU");
    return parts.join(" · ");
  }

  function stateBadge(state) {
    return el("span", { class: "badge state-" + (state || "").toLowerCase() }, state || "");
  }

  // A bar for `used` of `total`, with its figures as text beside it.
  function bar(label, used, total, format = (x) => String(x)) {
    const share = total > 0 ? Math.min(1, used / total) : 0;
    return el(
      "div",
      { class: "bar" },
      el("span", { class: "bar-label" }, label),
      el("meter", { min: "0", max: String(total || 1), value: String(used), "aria-label": label }),
      el("span", { class: "bar-figures" }, `${format(used)} of ${format(total)}`,
        ` (${Math.round(share * 100)}%)`)
    );
  }

  function reportError(error) {
    if (error instanceof ApiError && error.status === 401) return;
    let box = document.querySelector("[data-error]");
    if (!box) {
      box = el("p", { class: "error", role: "alert", dataset: { error: "" } });
      document.querySelector("main").prepend(box);
    }
    box.textContent = error.message || String(error);
    setTimeout(() => box.remove(), 8000);
  }

  return {
    isOver, mayRetry, api, el, hear, isStale, eventApplies, copyApplies, coalesce, follow,
    duration, secondsSince, memory, resources, stateBadge, bar, reportError,
    isAdmin: document.body.dataset.role === "admin",
  };
})();
