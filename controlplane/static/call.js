/* A call's page: its tree with a timeline of when and where each call ran, and the
   details of the selected call (arguments, result, error, attempts) with retry and
   cancel. It re-reads the tree every second while anything in it is unfinished. */
"use strict";

const LIVE_MS = 1000;
const IDLE_MS = 5000;
const page = document.getElementById("call-page");
const callId = page.dataset.callId;
let selectedId = callId;
let nodes = [];
let timer = null;

async function refresh() {
  clearTimeout(timer);
  let live = true;
  try {
    const {body} = await api("GET", `/api/call/${encodeURIComponent(callId)}/tree`);
    nodes = body.calls;
    live = nodes.some((node) => !TERMINAL.has(node.status));
    renderHeader(live);
    renderTree();
    await renderDetails();
    showMessage("");
  } catch (error) {
    showMessage(error.message);
  }
  timer = setTimeout(refresh, live ? LIVE_MS : IDLE_MS);
}

function renderHeader(live) {
  const root = nodes[0];
  document.getElementById("title").textContent = root.stage;
  document.getElementById("run-status").replaceWith(
    Object.assign(statusBadge(root.status), {id: "run-status"}));
  const counts = {};
  for (const node of nodes) counts[node.status] = (counts[node.status] || 0) + 1;
  document.getElementById("summary").textContent = `${nodes.length} calls: ` +
    Object.entries(counts).map(([status, n]) => `${n} ${status}`).join(", ");
  document.getElementById("live").textContent = live ? "live: updating every second" : "finished";
}

function renderTree() {
  const start = Math.min(...nodes.map((node) => Date.parse(node.created_at)));
  const end = Math.max(...nodes.map((node) => node.finished_at ? Date.parse(node.finished_at) :
                                                  TERMINAL.has(node.status) ? start : Date.now()));
  const span = Math.max(end - start, 1);
  document.getElementById("span").textContent = `(${formatMs(span)})`;
  const rows = nodes.map((node) => el("tr", {
      "data-call-id": node.id, "data-status": node.status,
      class: node.id === selectedId ? "selected" : null,
      onclick: () => {
        selectedId = node.id;
        renderTree();
        renderDetails().catch((error) => showMessage(error.message));
      },
    },
    el("td", {class: "stage-cell"}, el("span", {class: "indent", style: `width:${node.depth * 1.2}rem`}),
       el("span", {class: "stage-name"}, node.stage), node.error ? el("span", {class: "error-summary", title: node.error}, node.error) : null),
    el("td", {}, statusBadge(node.status)),
    el("td", {}, node.attempt),
    el("td", {class: "subtle"}, node.worker || "", node.run_mode ? el("span", {class: "mode"}, ` ${node.run_mode}`) : null),
    el("td", {}, formatMs(node.duration_ms)),
    el("td", {class: "timeline"}, timelineTrack(node, start, span))));
  document.querySelector("#tree tbody").replaceChildren(...rows);
}

/* The waterfall: a grey bar while queued, then a bar in the status colour while it ran. */
function timelineTrack(node, start, span) {
  const at = (iso) => ((iso ? Date.parse(iso) : Date.now()) - start) / span * 100;
  const bar = (kind, from, to, title) => el("span", {class: `bar ${kind}`, title,
    style: `left:${from.toFixed(2)}%;width:${Math.max(to - from, 0.3).toFixed(2)}%`});
  const created = at(node.created_at);
  const parts = [];
  if (node.started_at) {
    const began = at(node.started_at);
    const ended = node.finished_at ? at(node.finished_at) : at(null);
    if (began - created > 0.3) parts.push(bar("queued", created, began, `queued ${formatMs(between(node.created_at, node.started_at))}`));
    parts.push(bar(`run-${node.status}`, began, Math.min(ended, 100),
                   `${node.status} on ${node.worker || "?"}: ${took(node)}`));
  } else if (!TERMINAL.has(node.status)) {
    parts.push(bar("queued", created, 100, "queued, not started yet"));
  }
  return el("div", {class: "track"}, parts);
}

async function renderDetails() {
  const pane = document.getElementById("details");
  const asked = selectedId;
  const {body: call} = await api("GET", `/api/call/${encodeURIComponent(asked)}`);
  if (asked !== selectedId) return;  // another call was selected meanwhile: its answer shows
  pane.hidden = false;
  pane.dataset.callId = call.id;
  pane.dataset.status = call.status;
  document.getElementById("detail-stage").textContent = call.stage;
  document.getElementById("detail-status").replaceWith(
    Object.assign(statusBadge(call.status), {id: "detail-status"}));
  document.getElementById("detail-id").textContent = call.id;
  document.getElementById("retry").disabled = !["failed", "cancelled"].includes(call.status);
  document.getElementById("cancel").disabled = TERMINAL.has(call.status);
  renderFacts(call);
  document.getElementById("detail-arguments").textContent = JSON.stringify(call.arguments, null, 2);
  showBlock("result-block", "detail-result", call.status === "succeeded" ? JSON.stringify(call.result, null, 2) : null);
  showBlock("error-block", "detail-error", call.error ? errorText(call.error) : null);
  showBlock("output-block", "detail-output", call.output || null);
  const attempts = (call.attempts || []).map((attempt) => el("li", {},
    `attempt ${attempt.attempt} ${attempt.status} on ${attempt.worker || "?"}`,
    attempt.error ? el("pre", {class: "error"}, errorText(attempt.error)) : null));
  document.getElementById("attempts-block").hidden = !attempts.length;
  document.getElementById("detail-attempts").replaceChildren(...attempts);
}

function renderFacts(call) {
  const facts = [
    ["attempt", call.max_attempts > 1 ? `${call.attempt} (automatic retries up to ${call.max_attempts})`
                                      : `${call.attempt}`],
    ["worker", call.worker ? `${call.worker} (${call.run_mode})` : "not started"],
    ["queue", call.queue],
    ["code", codeVersion(call)],
    ["created", formatTime(call.created_at)],
    ["started", formatTime(call.started_at)],
    ["finished", formatTime(call.finished_at)],
    ["took", took(call)],
  ];
  const items = facts.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]);
  if (call.parent_stage_run_id) {
    items.push(el("dt", {}, "parent"),
               el("dd", {}, el("a", {href: `/calls/${encodeURIComponent(call.parent_stage_run_id)}`},
                               call.parent_stage_run_id)));
  }
  document.getElementById("facts").replaceChildren(...items);
}

function errorText(error) {
  const head = `${error.type || "Error"}: ${error.message || ""}`;
  return error.traceback ? `${head}\n\n${error.traceback}` : head;
}

function showBlock(blockId, preId, text) {
  document.getElementById(blockId).hidden = text === null;
  document.getElementById(preId).textContent = text ?? "";
}

/* Retry or cancel the call the pane shows. */
async function act(action) {
  const shown = document.getElementById("details").dataset.callId;
  try {
    await api("POST", `/api/call/${encodeURIComponent(shown)}/${action}`);
    showMessage("");
  } catch (error) {
    showMessage(error.message);
  }
  refresh();
}

document.getElementById("retry").addEventListener("click", () => act("retry"));
/* Cancel asks twice: a cancelled run stops everything under it. */
const cancelButton = document.getElementById("cancel");
cancelButton.addEventListener("click", () => {
  if (cancelButton.dataset.armed) {
    delete cancelButton.dataset.armed;
    cancelButton.textContent = "Cancel";
    act("cancel");
    return;
  }
  cancelButton.dataset.armed = "1";
  cancelButton.textContent = "Click again to cancel this call and all under it";
  setTimeout(() => { delete cancelButton.dataset.armed; cancelButton.textContent = "Cancel"; }, 4000);
});
refresh();
