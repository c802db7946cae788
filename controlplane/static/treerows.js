/* Drawing the run page's rows (see calltree.js for which rows there are): a call
   with its arguments, status, attempt, worker, duration and a timeline bar per
   attempt; a group of one stage's calls with its counts and its extent in time.
   Every row has the same height, so the page draws only those on screen. */
"use strict";

const ROW_PX = 28;

/* The run's extent in time, which every timeline shares. */
function timeSpan(nodes) {
  let start = Infinity;
  let end = -Infinity;
  for (const node of nodes) {
    const created = Date.parse(node.created_at);
    start = Math.min(start, created);
    end = Math.max(end, node.finished_at ? Date.parse(node.finished_at)
                        : TERMINAL.has(node.status) ? created : Date.now());
  }
  return {start, length: Math.max(end - start, 1)};
}

/* The row at `index`, absolutely placed; `selectedId` is highlighted. */
function drawRow(row, index, span, selectedId) {
  const style = `top:${index * ROW_PX}px`;
  if (row.kind === "group") return drawGroup(row, style, span);
  const node = row.node;
  const classes = ["row", node.id === selectedId && "selected", row.context && "context"];
  return el("div", {class: classes.filter(Boolean).join(" "), style,
                    "data-call-id": node.id, "data-status": node.status},
    el("div", {class: "cell stage-cell", title: node.error || node.arguments || node.stage},
       indent(row.depth), toggle(row.parent, !row.folded),
       el("span", {class: "stage-name"}, node.stage),
       node.arguments ? el("span", {class: "args"}, node.arguments) : null,
       node.error ? el("span", {class: "error-summary"}, node.error) : null),
    el("div", {class: "cell"}, statusBadge(node.status)),
    el("div", {class: "cell"}, node.attempt),
    el("div", {class: "cell subtle"}, node.worker || (node.status === "pending" ? waited(node) : ""),
       node.run_mode ? el("span", {class: "mode"}, ` ${node.run_mode}`) : null),
    el("div", {class: "cell"}, formatMs(node.duration_ms)),
    el("div", {class: "cell"}, callTrack(node, span)));
}

function drawGroup(row, style, span) {
  const counts = describeCounts(row.counts);
  const shown = row.shown < row.members.length ? ` (${row.shown} match)` : "";
  return el("div", {class: "row group", style, "data-group": row.key,
                    "data-failed": row.counts.failed || 0},
    el("div", {class: "cell stage-cell group-cell", title: `${row.members.length} × ${row.stage}: ${counts}`},
       indent(row.depth), toggle(true, row.open),
       el("span", {class: "group-size"}, `${row.members.length.toLocaleString("en")} × `),
       el("span", {class: "stage-name"}, row.stage), el("span", {class: "group-counts"}, `: ${counts}${shown}`)),
    el("div", {class: "cell"}, groupTrack(row.members, span)));
}

function indent(depth) {
  return el("span", {class: "indent", style: `width:${depth * 1.1}rem`});
}

/* ▾ open / ▸ folded, or the same room left empty for a call with no children. */
function toggle(present, open) {
  return present ? el("button", {class: "toggle", "aria-expanded": String(open),
                                 title: open ? "fold" : "open"}, open ? "▾" : "▸")
                 : el("span", {class: "toggle"});
}

/* Queued (grey), then a bar per attempt in its outcome's colour. */
function callTrack(node, span) {
  const attempts = node.earlier_attempts || [];
  const parts = [];
  const firstStart = attempts.length ? attempts[0].started_at : node.started_at;
  if (firstStart) {
    if (between(node.created_at, firstStart) > span.length * 0.003) parts.push(bar(span, "queued", node.created_at, firstStart,
                   `queued ${formatMs(between(node.created_at, firstStart))}`));
  } else if (!TERMINAL.has(node.status)) {
    parts.push(bar(span, "queued", node.created_at, null, "queued, not started yet"));
  }
  for (const attempt of attempts) {
    if (attempt.started_at) {
      parts.push(bar(span, `run-${attempt.status}`, attempt.started_at, attempt.finished_at,
                     `attempt ${attempt.attempt} ${attempt.status} on ${attempt.worker || "?"}: ` +
                     formatMs(between(attempt.started_at, attempt.finished_at))));
    }
  }
  if (node.started_at) {
    parts.push(bar(span, `run-${node.status}`, node.started_at, node.finished_at,
                   `attempt ${node.attempt} ${node.status} on ${node.worker || "?"}: ${took(node)}`));
  }
  return el("div", {class: "track"}, parts);
}

/* One bar from the group's first creation to its last finish, in its worst status's colour. */
function groupTrack(members, span) {
  let first = members[0];
  let last = members[0];
  for (const node of members) {
    if (node.created_at < first.created_at) first = node;
    if (!node.finished_at || (last.finished_at && node.finished_at > last.finished_at)) last = node;
  }
  const worst = ["failed", "running", "pending", "cancelled", "succeeded"]
    .find((status) => members.some((node) => node.status === status));
  return el("div", {class: "track"},
            bar(span, `run-${worst}`, first.created_at, last.finished_at, `${members.length} calls`));
}

/* A bar from `fromIso` to `toIso` (now, when missing), placed in the run's span. */
function bar(span, kind, fromIso, toIso, title) {
  const at = (iso) => Math.min(((iso ? Date.parse(iso) : Date.now()) - span.start) / span.length * 100, 100);
  const from = at(fromIso);
  const width = Math.max(at(toIso) - from, 0.3);
  return el("span", {class: `bar ${kind}`, title,
                     style: `left:${from.toFixed(2)}%;width:${width.toFixed(2)}%`});
}
