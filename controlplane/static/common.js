/* What both pages share: the API, building elements safely, formatting. */
"use strict";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/* Call the control plane's REST API (the session cookie signs the request in). */
async function api(method, path) {
  const response = await fetch(path, {method, headers: {"Accept": "application/json"},
                                      credentials: "same-origin"});
  const body = response.headers.get("Content-Type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    if (response.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname); }
    throw new Error((body && body.message) || `${method} ${path}: HTTP ${response.status}`);
  }
  return {body, headers: response.headers};
}

/* An element with attributes and children; text always goes in as text, never as HTML. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "style") node.style.cssText = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function statusBadge(status) {
  return el("span", {class: `status status-${status}`}, status);
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

/* "repo @ short commit", or what a call that names no version runs on. */
function codeVersion(call) {
  return [call.repo_name, (call.commit_hash || "").slice(0, 12)].filter(Boolean).join(" @ ") || "any version";
}

function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

/* Milliseconds between two ISO times (to now when the end is missing). */
function between(startIso, endIso) {
  return (endIso ? Date.parse(endIso) : Date.now()) - Date.parse(startIso);
}

/* How long a call waited to start (so far), or what it waits for and until when. */
function waited(call) {
  const waiting = call.waiting_for;
  if (waiting?.kind === "sleep") return `sleeping until ${formatTime(waiting.until)}`;
  if (waiting?.kind === "event") {
    return `waiting for event ${waiting.key}` + (waiting.until ? ` until ${formatTime(waiting.until)}` : "");
  }
  if (call.status === "pending" && call.not_before) return `due ${formatTime(call.not_before)}`;
  const ready = call.not_before && call.not_before > call.created_at ? call.not_before : call.created_at;
  return formatMs(between(ready, call.started_at));
}

/* How long a call ran (so far), or "" before it started. */
function took(call) {
  return call.started_at ? formatMs(between(call.started_at, call.finished_at)) : "";
}

function showMessage(text) {
  const box = document.getElementById("message");
  box.textContent = text || "";
  box.hidden = !text;
}
