/* The runs page's schedules: what workers registered from their workflow files,
   when each fires next and fired last, and how its last call went. */
"use strict";

async function loadSchedules() {
  try {
    const {body: schedules} = await api("GET", "/api/schedules");
    document.getElementById("schedules-section").hidden = !schedules.length;
    document.querySelector("#schedules tbody").replaceChildren(...schedules.map(scheduleRow));
  } catch (error) {
    /* the runs list says what is wrong */
  }
}

function scheduleRow(schedule) {
  const when = schedule.cron ? `cron ${schedule.cron} (${schedule.timezone})` : `every ${schedule.every_seconds} s`;
  const state = schedule.paused ? "paused" : schedule.active ? "active" : "lapsed (no worker registers it)";
  const late = schedule.last_late_seconds ? ` (${formatMs(schedule.last_late_seconds * 1000)} late)` : "";
  const last = schedule.last_call_id
    ? el("a", {href: `/calls/${encodeURIComponent(schedule.last_call_id)}`},
         schedule.last_status ? statusBadge(schedule.last_status) : schedule.last_call_id)
    : "";
  return el("tr", {"data-schedule": schedule.name},
    el("td", {class: "stage-cell"}, schedule.name),
    el("td", {class: "stage-cell"}, schedule.stage),
    el("td", {}, when),
    el("td", {}, state),
    el("td", {}, formatTime(schedule.next_fire_at)),
    el("td", {}, formatTime(schedule.last_fire_at), late),
    el("td", {}, last));
}

loadSchedules();
setInterval(loadSchedules, 5000);
