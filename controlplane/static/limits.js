/* The runs page's limits: each limited stage, and per value of its key the calls
   running and waiting (queued, or held back by the limit). */
"use strict";

async function loadLimits() {
  try {
    const {body: limits} = await api("GET", "/api/limits");
    document.getElementById("limits-section").hidden = !limits.length;
    document.querySelector("#limits tbody").replaceChildren(...limits.flatMap(limitRows));
  } catch (error) {
    /* the runs list says what is wrong */
  }
}

function limitRows(limit) {
  const gates = limit.gates.length ? limit.gates : [{key: null, running: 0, waiting: 0}];
  return gates.map((gate, i) => el("tr", {"data-limit": limit.stage, "data-key": gate.key ?? ""},
    el("td", {class: "stage-cell"}, i === 0 ? limit.stage : ""),
    el("td", {}, i === 0 ? limit.limit : ""),
    el("td", {}, gate.key === null ? "" : `${limit.key} = ${gate.key}`),
    el("td", {}, String(gate.running)),
    el("td", {}, String(gate.waiting))));
}

loadLimits();
setInterval(loadLimits, 5000);
