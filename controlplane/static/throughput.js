/* The runs page's last hour, from GET /api/stats (the same figures as /metrics):
   the backlog now, calls finished per minute, and how long they took. */
"use strict";

const CHART = {width: 600, height: 80};
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, title) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (title) node.append(Object.assign(document.createElementNS(SVG, "title"), {textContent: title}));
  return node;
}

function minuteLabel(minute) {
  return new Date(minute.minute).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
}

function finishedBars(minutes) {
  const most = Math.max(1, ...minutes.map(m => m.finished));
  const step = CHART.width / minutes.length;
  return minutes.flatMap((m, i) => {
    const height = CHART.height * m.finished / most;
    const failed = CHART.height * m.failed / most;
    const title = `${minuteLabel(m)}: ${m.finished} finished, ${m.failed} failed`;
    return [
      svg("rect", {class: "finished", x: i * step, y: CHART.height - height, width: step * 0.8,
                   height, "data-minute": m.minute}, title),
      svg("rect", {class: "failed", x: i * step, y: CHART.height - failed, width: step * 0.8,
                   height: failed}, title),
    ];
  });
}

function latencyLines(minutes) {
  const step = CHART.width / minutes.length;
  const seen = minutes.flatMap(m => [m.p50_seconds, m.p95_seconds]).filter(s => s);
  const low = Math.log10(Math.min(0.005, ...seen)), high = Math.log10(Math.max(1, ...seen));
  const y = seconds => CHART.height * (1 - (Math.log10(seconds) - low) / (high - low));
  return ["p50", "p95"].map(which => svg("polyline", {
    class: which,
    points: minutes.map((m, i) => [m, i]).filter(([m]) => m[`${which}_seconds`])
      .map(([m, i]) => `${i * step + step * 0.4},${y(m[`${which}_seconds`])}`).join(" "),
  }, `${which} over the last hour, between ${10 ** low} s and ${10 ** high} s`));
}

function seconds(value) {
  return value === null ? "–" : value < 1 ? `${Math.round(value * 1000)} ms` : `${value} s`;
}

async function loadThroughput() {
  try {
    const {body: stats} = await api("GET", "/api/stats");
    const hour = stats.last_hour;
    const finished = hour.reduce((sum, m) => sum + m.finished, 0);
    const latest = [...hour].reverse().find(m => m.finished);
    document.getElementById("throughput-summary").textContent =
      `Backlog ${stats.backlog} on ${stats.queues.length} queue(s), ${stats.delayed} delayed, ` +
      `${stats.held_by_limits} held by limits; ${stats.workers_alive} worker(s) alive; ` +
      `last hour: ${finished} call(s) finished` +
      (latest ? `; latest minute p50 ${seconds(latest.p50_seconds)}, p95 ${seconds(latest.p95_seconds)}` : "");
    document.getElementById("finished-chart").replaceChildren(...finishedBars(hour));
    document.getElementById("latency-chart").replaceChildren(...latencyLines(hour));
  } catch (error) {
    /* the runs list says what is wrong */
  }
}

loadThroughput();
setInterval(loadThroughput, 10000);
