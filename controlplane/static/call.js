/* A call's page: its tree, folded, filtered and searched, drawn only where it is on
   screen (calltree.js, treerows.js), and the details of the selected call
   (arguments, result, error, attempts) with retry and cancel. It opens on the
   first failure's root cause, and re-reads the tree while anything in it runs. */
"use strict";

const LIVE_MS = 1000;
const IDLE_MS = 5000;
/* Rows drawn above and below those on screen, so a scroll shows no gap. */
const OVERSCAN = 10;
const page = document.getElementById("call-page");
const callId = page.dataset.callId;
const viewport = document.getElementById("tree-rows");
const canvas = document.getElementById("tree-canvas");
const statusFilter = document.getElementById("status-filter");
const search = document.getElementById("search");
/* What the reader opened and folded, and the filter: kept across re-reads. */
const view = {open: new Set(), folded: new Set(), matches: null};
let tree = null;
let rows = [];
let span = {start: 0, length: 1};
let selectedId = callId;
/* Until the reader looks around, the page keeps the first failure in view. */
let following = true;
let timer = null;

async function refresh() {
  clearTimeout(timer);
  let wait = IDLE_MS;
  try {
    const began = performance.now();
    const {body} = await api("GET", `/api/call/${encodeURIComponent(callId)}/tree`);
    const first = tree === null;
    tree = new CallTree(body.calls);
    span = timeSpan(body.calls);
    const live = body.calls.some((node) => !TERMINAL.has(node.status));
    renderHeader(live);
    if (following) showFirstFailure(); else layout();
    if (first) performance.mark("callplane:run-shown");
    showMessage("");
    // A big run is re-read less often: never more than a third of the time in reading it.
    if (live) wait = Math.max(LIVE_MS, 3 * (performance.now() - began));
    await renderWhy(live);
    await renderDetails();
  } catch (error) {
    showMessage(error.message);
  }
  timer = setTimeout(refresh, wait);
}

/* While the run is not finished: the chain from it down to what holds it up. */
async function renderWhy(live) {
  const box = document.getElementById("why");
  box.hidden = !live;
  if (!live) return;
  try {
    const {body} = await api("GET", `/api/call/${encodeURIComponent(callId)}/waits`);
    document.getElementById("why-chain").replaceChildren(whyItem(body));
  } catch (error) {  /* the tree and the details still show */
    document.getElementById("why-chain").replaceChildren(el("li", {class: "subtle"}, error.message));
  }
}

function whyItem(node) {
  const many = node.count > 1 ? ` ×${node.count}` : "";
  const line = el("a", {href: "#", onclick: (event) => { event.preventDefault(); goTo(node.id); }},
    `${node.stage}${many}`);
  const item = el("li", {"data-call-id": node.id}, line, " ", statusBadge(node.status), " ",
    el("span", {class: "why-text"}, node.reason.text));
  if (node.below?.length) item.append(el("ul", {}, ...node.below.map(whyItem)));
  return item;
}

function renderHeader(live) {
  const root = tree.root;
  document.getElementById("title").textContent = root.stage;
  document.getElementById("run-status").replaceWith(
    Object.assign(statusBadge(root.status), {id: "run-status"}));
  document.getElementById("summary").textContent =
    `${tree.nodes.length.toLocaleString("en")} calls: ${describeCounts(tree.counts)}`;
  document.getElementById("live").textContent = live ? "live: updating" : "finished";
  document.getElementById("span").textContent = `(${formatMs(span.length)})`;
  const chosen = statusFilter.value;
  statusFilter.replaceChildren(
    el("option", {value: ""}, `any status (${tree.nodes.length.toLocaleString("en")})`),
    ...Object.entries(tree.counts).map(([status, n]) =>
      el("option", {value: status}, `${status} (${n.toLocaleString("en")})`)));
  statusFilter.value = chosen in tree.counts ? chosen : "";
  document.getElementById("first-failure").hidden = !tree.counts.failed;
}

/* The rows to show under the reader's choices, then those on screen. */
function layout() {
  rows = tree.rows(view);
  canvas.style.height = `${rows.length * ROW_PX}px`;
  document.getElementById("no-match").hidden = rows.length > 0;
  const matching = view.matches ? rows.filter((row) => row.kind === "call" && !row.context).length : null;
  document.getElementById("matching").textContent =
    matching === null ? "" : `${matching.toLocaleString("en")} matching`;
  draw();
}

function draw() {
  const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_PX) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW_PX) + OVERSCAN);
  canvas.replaceChildren(...rows.slice(first, last).map(
    (row, offset) => drawRow(row, first + offset, span, selectedId)));
}

/* Open the way to the first failure's root cause, select it and scroll it to the middle. */
function showFirstFailure() {
  const failure = tree.firstFailure();
  if (failure) {
    reveal(failure.id);
    selectedId = failure.id;
  }
  layout();
  if (failure) scrollTo(failure.id);
}

function reveal(id) {
  for (const node of [...tree.ancestors(id), tree.byId.get(id)]) {
    if (node.id !== id) view.folded.delete(node.id);
    const group = tree.groupOf.get(node.id);
    if (group) view.open.add(group.key);
  }
}

function scrollTo(id) {
  const index = rows.findIndex((row) => row.kind === "call" && row.node.id === id);
  if (index < 0) return;
  viewport.scrollTop = Math.max(0, index * ROW_PX - (viewport.clientHeight - ROW_PX) / 2);
  draw();
}

/* Show a call the reader asked for: open the way to it, scroll to it, select it. */
function goTo(id) {
  if (!tree.byId.has(id)) return;
  following = false;
  reveal(id);
  layout();
  scrollTo(id);
  select(id);
}

function select(id) {
  selectedId = id;
  draw();
  renderDetails().catch((error) => showMessage(error.message));
}

/* One listener for every row: a toggle folds or opens, a call row selects its call. */
canvas.addEventListener("click", (event) => {
  const row = event.target.closest(".row");
  if (!row) return;
  following = false;
  const onToggle = event.target.closest(".toggle");
  if (row.dataset.group) {
    if (view.open.has(row.dataset.group)) view.open.delete(row.dataset.group);
    else view.open.add(row.dataset.group);
    layout();
  } else if (onToggle) {
    const id = row.dataset.callId;
    if (view.folded.has(id)) view.folded.delete(id); else view.folded.add(id);
    layout();
  } else {
    select(row.dataset.callId);
  }
});

let drawing = false;
viewport.addEventListener("scroll", () => {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => { drawing = false; draw(); });
});
window.addEventListener("resize", draw);
for (const kind of ["wheel", "keydown", "mousedown", "touchstart"]) {
  viewport.addEventListener(kind, () => { following = false; }, {passive: true});
}

function applyFilter() {
  following = false;
  view.matches = callFilter(statusFilter.value, search.value);
  viewport.scrollTop = 0;
  layout();
}
statusFilter.addEventListener("change", applyFilter);
search.addEventListener("input", applyFilter);
document.getElementById("first-failure").addEventListener("click", () => {
  following = false;
  statusFilter.value = "";
  search.value = "";
  view.matches = null;
  showFirstFailure();
  renderDetails().catch((error) => showMessage(error.message));
});

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
