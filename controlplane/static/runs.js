/* The runs page: root calls, newest first, filtered and paged; refreshed every few seconds. */
"use strict";

const REFRESH_MS = 2000;
const PAGE_SIZE = 25;
let page = 1;

async function loadRuns() {
  const query = new URLSearchParams({page, page_size: PAGE_SIZE});
  for (const [name, value] of new FormData(document.getElementById("filters"))) {
    if (value) query.set(name, value);
  }
  try {
    const {body: runs, headers} = await api("GET", `/api/runs?${query}`);
    showMessage("");
    renderRuns(runs);
    renderPager(JSON.parse(headers.get("X-Pagination") || "{}"));
  } catch (error) {
    showMessage(error.message);
  }
}

/* What was set aside instead of recorded or run: shown only when there is some. */
async function loadSetAside() {
  try {
    const {body: counts} = await api("GET", "/api/set-aside");
    const parts = [];
    if (counts.reports) parts.push(`${counts.reports} worker report(s) could not be recorded (callplane recorder dead-letters)`);
    if (counts.jobs) parts.push(`${counts.jobs} job(s) not created by the control plane were refused (see rq-dashboard's failed jobs)`);
    const line = document.getElementById("set-aside");
    line.textContent = parts.length ? `Set aside: ${parts.join("; ")}.` : "";
    line.hidden = !parts.length;
  } catch (error) {
    /* the runs list says what is wrong */
  }
}

function renderRuns(runs) {
  const rows = runs.map((run) => {
    const open = () => { window.location = `/calls/${encodeURIComponent(run.id)}`; };
    return el("tr", {onclick: open, "data-call-id": run.id},
      el("td", {}, formatTime(run.created_at)),
      el("td", {class: "stage-cell"}, el("a", {href: `/calls/${encodeURIComponent(run.id)}`}, run.stage)),
      el("td", {}, statusBadge(run.status)),
      el("td", {}, waited(run)),
      el("td", {}, took(run)),
      el("td", {class: "subtle"}, codeVersion(run)),
      el("td", {class: "subtle"}, el("code", {}, run.id)));
  });
  const body = document.querySelector("#runs tbody");
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {colspan: 7, class: "subtle"},
    "No runs recorded yet. Run a workflow (callplane demo, or callplane run FILE) and it appears here."))]));
}

/* The header has a total only when the runs were few enough to count (see GET
   /api/runs); otherwise its next_page says more follow. */
function renderPager(pagination) {
  const counted = pagination.total !== undefined;
  document.getElementById("page-info").textContent = counted
    ? `page ${page} of ${pagination.total_pages || 1} · ${pagination.total} runs`
    : `page ${page} · more than ${page * PAGE_SIZE} runs`;
  document.getElementById("newer").disabled = page <= 1;
  document.getElementById("older").disabled = !pagination.next_page;
}

document.getElementById("newer").addEventListener("click", () => { page -= 1; loadRuns(); });
document.getElementById("older").addEventListener("click", () => { page += 1; loadRuns(); });
document.getElementById("filters").addEventListener("input", () => { page = 1; loadRuns(); });
document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
loadRuns();
loadSetAside();
setInterval(loadRuns, REFRESH_MS);
setInterval(loadSetAside, 5 * REFRESH_MS);
