/* A run's calls as a tree the run page can fold, filter and search, flattened into
   the rows it shows. Many siblings of one stage are folded into one summary row
   ("312 × charge_card"), so a run of 10,000 calls reads as a few dozen rows until
   it is opened. No DOM here: the page draws the rows (see call.js). */
"use strict";

/* A parent with more children than this shows each stage's many calls as a group. */
const GROUP_OVER = 24;
/* ...when that stage has more calls than this among them. */
const GROUP_AT_LEAST = 5;

class CallTree {
  /* `nodes`: the tree endpoint's calls, depth-first, the asked-for call first. */
  constructor(nodes) {
    this.nodes = nodes;
    this.root = nodes[0];
    this.byId = new Map(nodes.map((node) => [node.id, node]));
    this.children = new Map();
    for (const node of nodes) {
      if (node !== this.root && this.byId.has(node.parent_stage_run_id)) {
        this.childrenOf(node.parent_stage_run_id).push(node);
      }
    }
    this.groupOf = new Map();  // call id -> the group it is folded into
    this.entries = new Map();  // call id -> its children's rows: calls and groups
    for (const [parentId, children] of this.children) {
      this.entries.set(parentId, this.group(parentId, children));
    }
    this.counts = countStatuses(nodes);
  }

  childrenOf(id) {
    if (!this.children.has(id)) this.children.set(id, []);
    return this.children.get(id);
  }

  /* Children in call order; a stage's calls become one group where there are many. */
  group(parentId, children) {
    if (children.length <= GROUP_OVER) return children.map((node) => ({kind: "call", node}));
    const byStage = new Map();
    for (const node of children) {
      if (!byStage.has(node.stage)) byStage.set(node.stage, []);
      byStage.get(node.stage).push(node);
    }
    const entries = [];
    const placed = new Set();
    for (const node of children) {
      const members = byStage.get(node.stage);
      if (members.length < GROUP_AT_LEAST) {
        entries.push({kind: "call", node});
      } else if (!placed.has(node.stage)) {
        placed.add(node.stage);
        const group = {kind: "group", key: `${parentId}/${node.stage}`, stage: node.stage, members,
                       counts: countStatuses(members)};
        for (const member of members) this.groupOf.set(member.id, group);
        entries.push(group);
      }
    }
    return entries;
  }

  /* The root cause of the first failure: the first failed call, depth-first, that
     no failed call of its own explains. */
  firstFailure() {
    return this.nodes.find((node) => node.status === "failed" &&
      !(this.children.get(node.id) || []).some((child) => child.status === "failed")) || null;
  }

  /* The calls above `id`, root first. */
  ancestors(id) {
    const path = [];
    for (let node = this.byId.get(id); node && node !== this.root;) {
      node = this.byId.get(node.parent_stage_run_id);
      if (node) path.unshift(node);
    }
    return path;
  }

  /* The rows to show, each {kind: "call", node, depth} or {kind: "group", ...group,
     depth, open}. `view.open`: the keys of opened groups; `view.folded`: the ids of
     folded calls; `view.matches(node)`: a filter, or null for none. Under a filter,
     only matching calls and the calls above them (as context) show, groups opened. */
  rows(view) {
    const kept = view.matches ? this.keptBy(view.matches) : null;
    const rows = [];
    const visit = (node, depth) => {
      const folded = !kept && view.folded.has(node.id);
      const entries = this.entries.get(node.id) || [];
      rows.push({kind: "call", node, depth, parent: entries.length > 0, folded,
                 context: kept !== null && !view.matches(node)});
      if (folded) return;
      for (const entry of entries) {
        if (entry.kind === "call") {
          if (!kept || kept.has(entry.node.id)) visit(entry.node, depth + 1);
          continue;
        }
        const members = kept ? entry.members.filter((member) => kept.has(member.id)) : entry.members;
        if (!members.length) continue;
        const open = kept !== null || view.open.has(entry.key);
        rows.push({...entry, depth: depth + 1, open, shown: members.length});
        if (open) for (const member of members) visit(member, depth + 2);
      }
    };
    if (!kept || kept.has(this.root.id)) visit(this.root, 0);
    return rows;
  }

  /* The ids of calls that match, or have a match below them. The nodes are
     depth-first, so walking them backwards meets every child before its parent. */
  keptBy(matches) {
    const kept = new Set();
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i];
      if (kept.has(node.id) || matches(node)) {
        kept.add(node.id);
        if (node !== this.root) kept.add(node.parent_stage_run_id);
      }
    }
    return kept;
  }
}

function countStatuses(nodes) {
  const counts = {};
  for (const node of nodes) counts[node.status] = (counts[node.status] || 0) + 1;
  return counts;
}

/* "310 succeeded, 2 failed", failures first. */
function describeCounts(counts) {
  const order = ["failed", "running", "pending", "cancelled", "succeeded"];
  return Object.entries(counts)
    .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))
    .map(([status, n]) => `${n.toLocaleString("en")} ${status}`).join(", ");
}

/* A filter by status ("" for any) and by text in the stage's name or the call's id. */
function callFilter(status, text) {
  const needle = text.trim().toLowerCase();
  if (!status && !needle) return null;
  return (node) => (!status || node.status === status) &&
    (!needle || node.stage.toLowerCase().includes(needle) || node.id.startsWith(needle));
}
