// dualwrite dashboard, issue 20: map states (Stop / Start), the failures' life cycle (state filter,
// state column, Discard) and the activity log. Uses app.js's helpers (el, api, act, $, fmtWhen, fmtDur).
"use strict";

const STATE_LABELS = { "not-running": "not running", initializing: "initializing", running: "running",
  paused: "paused", stopped: "stopped", failing: "failing" };
const FAILURE_FILTERS = [["", "any state"], ["unresolved", "unresolved"], ["open", "open"], ["retrying", "retrying"],
  ["resolved", "resolved"], ["discarded", "discarded"]];
const activityState = { offset: 0, limit: 25 };

function shownStateLabel(m) { return STATE_LABELS[m.shown_state] || m.shown_state; }

// ---------------------------------------------------------------- map cards: Stop / Start

function lifecycleButtons(c, entity) {
  const path = (action) => `/api/maps/${encodeURIComponent(entity)}/${action}`;
  c.stop = el("button", { type: "button", class: "danger", text: "Stop", "data-action": "stop",
    onclick: () => {
      if (!confirm(`Stop ${entity}? Its changes are acknowledged and counted but not synced until it is started.`)) return;
      act("stop " + entity, () => api("POST", path("stop"), {}));
    } });
  c.start = el("button", { type: "button", text: "Start", "data-action": "start",
    onclick: () => act("start " + entity, () => api("POST", path("start"), {})) });
  return el("span", { class: "controls" }, c.stop, c.start);
}

function updateLifecycleButtons(c, m) {
  const halted = m.state === "stopped" || m.state === "not-running";
  c.root.dataset.state = m.shown_state;
  c.badge.textContent = shownStateLabel(m);
  c.start.hidden = m.state === "running";
  c.stop.hidden = halted;
  c.pause.hidden = m.state !== "running";
  c.resumeGroup.hidden = m.state !== "paused";
}

// ---------------------------------------------------------------- failures: state and Discard

function failureStateCell(f) {
  let text = f.state;
  if (f.resolution) text += ` (${f.resolution})`;
  if (f.state_by) text += ` by ${f.state_by}`;
  if (f.state_changed_at) text += ` ${fmtWhen(f.state_changed_at)}`;
  return el("td", { class: "failure-state state-" + f.state, "data-state": f.state, text });
}

function discardButton(f) {
  if (f.state !== "open" && f.state !== "retrying") return null;
  return el("button", { type: "button", class: "danger", text: "Discard",
    onclick: () => act("discard failure " + f.id, () => api("POST", `/api/failures/${f.id}/discard`, {}).then(() => "discarded")) });
}

function failureStateFilter() { return $("failures-state").value; }

// ---------------------------------------------------------------- activity

function renderActivity(page) {
  const body = $("activity").tBodies[0];
  body.replaceChildren(...page.items.map((a) => el("tr", { "data-kind": a.kind, "data-entity": a.entity },
    el("td", { text: fmtWhen(a.at) }), el("td", { text: a.entity }), el("td", { text: a.kind }),
    el("td", { class: "msg", text: a.category === "change"
      ? `${a.key} ${a.direction} ${a.message}, ${fmtDur(a.latency_s)}` : a.message }),
    el("td", { text: a.actor || "bridge" }),
    el("td", { class: "trace", text: a.trace_id || "" }))));
  $("activity-empty").hidden = page.items.length > 0;
  const end = page.offset + page.items.length;
  $("activity-range").textContent = page.total ? `${page.offset + 1}–${end} of ${page.total}` : "";
  $("activity-prev").disabled = page.offset === 0;
  $("activity-next").disabled = end >= page.total;
}

async function refreshActivity() {
  const q = new URLSearchParams({ offset: activityState.offset, limit: activityState.limit });
  const entity = $("activity-entity").value, category = $("activity-category").value;
  if (entity) q.set("entity", entity);
  if (category) q.set("category", category);
  renderActivity(await api("GET", "/api/activity?" + q));
  fillEntitySelect($("activity-entity"), true);
}

function startLifecycle() {
  const filter = $("failures-state");
  for (const [value, text] of FAILURE_FILTERS) filter.append(el("option", { value, text }));
  filter.addEventListener("change", () => { state.failuresOffset = 0; refresh(); });
  for (const id of ["activity-entity", "activity-category"]) {
    $(id).addEventListener("change", () => { activityState.offset = 0; refresh(); });
  }
  $("activity-prev").addEventListener("click", () => {
    activityState.offset = Math.max(0, activityState.offset - activityState.limit); refresh(); });
  $("activity-next").addEventListener("click", () => { activityState.offset += activityState.limit; refresh(); });
}
