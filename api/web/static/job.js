// A job's page: its facts, its timeline, and its output followed live through the output
// stream (which resumes after the last chunk by itself, and ends with the job).
"use strict";

(() => {
  const { api, el, eventApplies, copyApplies, isStale, coalesce, follow, duration,
    secondsSince, resources, stateBadge, reportError, isOver, mayRetry } = jobyard;
  const card = document.querySelector("[data-job-id]");
  const jobId = card.dataset.jobId;
  const jobPath = "/api/v1/jobs/" + encodeURIComponent(jobId);
  const output = document.querySelector("[data-job-output]");
  const search = document.querySelector("[data-output-search]");
  const matches = document.querySelector("[data-output-matches]");
  const buttons = Object.fromEntries(
    [...document.querySelectorAll("[data-action]")].map((b) => [b.dataset.action, b])
  );
  const chunks = []; // every chunk received, in order: the search and the download read it
  let lastOffset = 0;
  let outputSource = null;
  let outputEnded = false; // the stream said the job is over and every chunk was sent

  async function load() {
    try {
      const [copy, history] = await Promise.all([api(jobPath), api(jobPath + "/events")]);
      if (!copyApplies(card, copy)) return;
      show(copy);
      showTimeline(history.events);
      if (isStale(copy)) reload(); // the feed said more happened meanwhile
    } catch (error) {
      if (error.status === 404) gone();
      else reportError(error);
    }
  }
  const reload = coalesce(load, 200);

  function show(copy) {
    card.dataset.state = copy.state;
    card.dataset.version = copy.version;
    document.querySelector('[data-field="state"]').replaceChildren(stateBadge(copy.state));
    const facts = [
      ["Name", copy.name],
      ["Owner", copy.owner],
      ["State", copy.state + (copy.cancel_requested && !isOver(copy.state) ? " (cancelling)" : "")],
      ["Reason", copy.reason],
      ["Waiting because", copy.state === "QUEUED" ? copy.pending_reason : null],
      ["Retry at", copy.retry_at],
      ["Exit code", copy.exit_code],
      ["Error", copy.error],
      ["Attempt", copy.attempt],
      ["Automatic retries", `${copy.retries} of ${copy.max_retries}`],
      ["Worker", copy.worker_id],
      ["Image", copy.image],
      ["Resources", resources(copy.resources)],
      ["Priority", copy.priority],
      ["Submitted", copy.created_at],
      ["Ran for", copy.started_at ? duration(secondsSince(copy.started_at, copy.finished_at)) : null],
      ["Output", `${copy.output_bytes} bytes` + (copy.output_truncated ? " (truncated: the limit was reached)" : "")],
      ...Object.entries(copy.metrics || {}).map(([name, value]) => ["Metric " + name, value]),
    ];
    document.querySelector("[data-facts]").replaceChildren(
      ...facts.filter(([, v]) => v !== null && v !== undefined && v !== "")
        .flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, String(value))])
    );
    document.querySelector("[data-spec]").textContent = JSON.stringify({
      image: copy.image, command: copy.command, env: copy.env, resources: copy.resources,
      timeout_s: copy.timeout_s, priority: copy.priority, labels: copy.labels,
      network: copy.network, constraints: copy.constraints, max_retries: copy.max_retries,
      queue_timeout_s: copy.queue_timeout_s,
    }, null, 2);
    buttons.cancel.hidden = isOver(copy.state) || copy.cancel_requested;
    buttons.retry.hidden = !mayRetry(copy.state);
    buttons.delete.hidden = !isOver(copy.state);
    if (!isOver(copy.state)) outputEnded = false; // retried: more to come
    if (!outputEnded) followOutput();
  }

  function showTimeline(events) {
    document.querySelector("[data-timeline]").replaceChildren(...events.map((event) =>
      el("li", {},
        el("time", { datetime: event.at }, event.at), " ",
        event.from ? `${event.from} → ` : "submitted → ", stateBadge(event.to),
        event.reason ? ` (${event.reason})` : "",
        event.worker_id ? ` on ${event.worker_id}` : "",
        ` · attempt ${event.attempt}`,
        event.actor ? ` · by ${event.actor}` : ""
      )
    ));
  }

  function gone() {
    document.querySelector("[data-missing]").hidden = false;
    card.dataset.state = "DELETED";
    for (const button of Object.values(buttons)) button.hidden = true;
    closeOutput();
  }

  // The output stream: chunks as they are stored, then an `end` event when the job is over.
  function followOutput() {
    if (outputSource && outputSource.readyState !== EventSource.CLOSED) return;
    const query = lastOffset ? "?last_event_id=" + lastOffset : "";
    outputSource = new EventSource(jobPath + "/output/stream" + query);
    outputSource.onmessage = (message) => {
      const chunk = JSON.parse(message.data);
      if (chunk.offset <= lastOffset) return; // already shown (a resumed stream)
      lastOffset = chunk.offset;
      chunks.push(chunk);
      appendChunk(chunk);
    };
    outputSource.addEventListener("end", () => {
      outputEnded = true;
      closeOutput();
      reload(); // the job's final copy, with its version
    });
    outputSource.onerror = () => {
      // EventSource retries by itself unless the answer was an error (404: deleted).
      if (outputSource.readyState === EventSource.CLOSED) reload();
    };
  }

  function closeOutput() {
    if (outputSource) outputSource.close();
  }

  function appendChunk(chunk) {
    const query = search.value;
    if (!query) {
      output.append(chunkElement(chunk.stream, chunk.data));
      return;
    }
    for (const line of chunk.data.split(/(?<=\n)/)) {
      if (line.includes(query)) output.append(chunkElement(chunk.stream, line));
    }
    countMatches();
  }

  function chunkElement(stream, text) {
    return el("span", { class: "stream-" + stream, dataset: { stream } }, text);
  }

  // Searching shows the lines that hold the text, stdout and stderr still told apart.
  function redraw() {
    output.replaceChildren();
    const query = search.value;
    if (!query) {
      output.append(...chunks.map((c) => chunkElement(c.stream, c.data)));
      matches.textContent = "";
      return;
    }
    for (const chunk of chunks) appendChunk(chunk);
    countMatches();
  }

  function countMatches() {
    const n = output.childElementCount;
    matches.textContent = `${n} line${n === 1 ? "" : "s"} match`;
  }

  function download() {
    const text = chunks.map((c) => c.data).join("");
    const link = el("a", {
      href: URL.createObjectURL(new Blob([text], { type: "text/plain" })),
      download: jobId + ".txt",
    });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  async function act(method, suffix) {
    try {
      const copy = await api(jobPath + suffix, { method });
      if (method === "DELETE") {
        location.assign("/jobs");
        return;
      }
      if (copyApplies(card, copy)) show(copy);
      reload();
    } catch (error) {
      reportError(error);
    }
  }

  function onChange(change) {
    if (change.id !== jobId || !change.kind.startsWith("job")) return;
    if (change.kind === "job_deleted") {
      gone();
      return;
    }
    if (!eventApplies(card, change)) return;
    if (change.kind === "job") {
      card.dataset.state = change.to;
      card.dataset.version = change.version;
      document.querySelector('[data-field="state"]').replaceChildren(stateBadge(change.to));
    }
    reload();
  }

  buttons.cancel.addEventListener("click", () => act("POST", "/cancel"));
  buttons.retry.addEventListener("click", () => act("POST", "/retry"));
  buttons.delete.addEventListener("click", () => act("DELETE", ""));
  search.addEventListener("input", redraw);
  document.querySelector("[data-output-download]").addEventListener("click", download);
  window.addEventListener("online", () => { if (!outputEnded) followOutput(); });
  follow({ onChange, refetch: reload });
})();
