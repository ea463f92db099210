// The alert rules view: list, add, change and delete the rules of /api/alerts (several per map;
// actions pause, webhook, log). Uses app.js's helpers (el, api, act, notice); polls on its own.
"use strict";

const ALERT_ACTIONS = ["pause", "webhook", "log"];
const alertView = { rows: new Map(), maps: [], busy: false };

function actionSelect(label, value) {
  const s = el("select", { "aria-label": label });
  for (const a of ALERT_ACTIONS) s.append(el("option", { value: a, text: a }));
  s.value = value;
  return s;
}

function mapSelect(label, maps, value) {
  const s = el("select", { "aria-label": label });
  s.append(el("option", { value: "*", text: "* (every map)" }));
  for (const m of maps) s.append(el("option", { value: m, text: m }));
  s.value = value;
  return s;
}

function alertRow(rule) {
  const id = rule.id;
  const row = {
    map: mapSelect(`rule ${id} map`, alertView.maps, rule.map),
    n: el("input", { type: "number", min: "1", "aria-label": `rule ${id} failures` }),
    m: el("input", { type: "number", min: "1", "aria-label": `rule ${id} minutes` }),
    action: actionSelect(`rule ${id} action`, rule.action),
    url: el("input", { type: "url", placeholder: "keep current", "aria-label": `rule ${id} webhook URL` }),
    now: el("td", { class: "muted" }), dirty: false,
  };
  for (const input of [row.map, row.n, row.m, row.action, row.url]) {
    input.addEventListener("input", () => { row.dirty = true; });
  }
  const save = el("button", { type: "button", class: "secondary", text: "Save", onclick: () => {
    const body = { map: row.map.value, failures: Number(row.n.value), minutes: Number(row.m.value),
      action: row.action.value };
    if (row.url.value) body.url = row.url.value;
    act(`alert rule ${id}`, () => api("PUT", `/api/alerts/${id}`, body).then(() => { row.dirty = false; row.url.value = ""; refreshAlerts(); }));
  } });
  const del = el("button", { type: "button", class: "danger", text: "Delete", onclick: () => {
    if (!confirm(`Delete alert rule ${id}?`)) return;
    act(`delete alert rule ${id}`, () => api("DELETE", `/api/alerts/${id}`).then(() => refreshAlerts()));
  } });
  row.tr = el("tr", { "data-rule": String(id) }, el("td", { text: String(id) }), el("td", {}, row.map),
    el("td", {}, row.n), el("td", {}, row.m), el("td", {}, row.action), el("td", {}, row.url), row.now,
    el("td", {}, el("div", { class: "controls nowrap" }, save, del)));
  return row;
}

function renderAlertRules(data) {
  alertView.maps = data.maps;
  const body = $("alerts").tBodies[0];
  const seen = new Set();
  for (const rule of data.rules) {
    seen.add(rule.id);
    let row = alertView.rows.get(rule.id);
    if (!row) { row = alertRow(rule); alertView.rows.set(rule.id, row); body.append(row.tr); }
    if (!row.dirty) {
      row.map.value = rule.map; row.n.value = rule.failures; row.m.value = rule.minutes; row.action.value = rule.action;
      row.url.placeholder = rule.url || (rule.action === "webhook" ? "keep current" : "");
    }
    const counts = Object.entries(rule.recent_failures).map(([m, n]) => `${m}: ${n}`).join(", ");
    row.now.textContent = counts || "no map";
  }
  for (const [id, row] of alertView.rows) if (!seen.has(id)) { row.tr.remove(); alertView.rows.delete(id); }
  $("alerts-empty").hidden = data.rules.length > 0;
  $("alerts-paused").textContent = data.paused_by_rule.length ? "paused by a rule: " + data.paused_by_rule.join(", ") : "";
  const pick = $("alert-new-map");
  if (pick.options.length !== data.maps.length + 1) {
    const keep = pick.value;
    pick.replaceChildren(el("option", { value: "*", text: "* (every map)" }), ...data.maps.map((m) => el("option", { value: m, text: m })));
    pick.value = keep || "*";
  }
}

async function refreshAlerts() {
  if (alertView.busy) return;
  alertView.busy = true;
  try { renderAlertRules(await api("GET", "/api/alerts")); }
  catch (e) { $("alerts-paused").textContent = "alert rules not loaded: " + e.message; }
  finally { alertView.busy = false; }
}

function startAlerts() {
  const action = $("alert-new-action");
  for (const a of ALERT_ACTIONS) action.append(el("option", { value: a, text: a }));
  $("alert-new").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const body = { map: f.get("map"), failures: Number(f.get("failures")), minutes: Number(f.get("minutes")),
      action: f.get("action") };
    if (f.get("url")) body.url = f.get("url");
    act("add alert rule", () => api("POST", "/api/alerts", body).then((r) => { e.target.reset(); refreshAlerts(); return "rule " + r.id; }));
  });
  refreshAlerts();
  setInterval(refreshAlerts, POLL_MS);
}

document.addEventListener("DOMContentLoaded", startAlerts);
