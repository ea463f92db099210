// dualwrite operations dashboard: polls the JSON API every 2 s, no framework, no build step.
// Every value from the API goes into the page through textContent (never innerHTML).
"use strict";

const POLL_MS = 2000;
const MODES = [
  ["catch-up", "catch up first"],
  ["skip-keep", "skip to live, keep backlog"],
  ["skip-discard", "skip to live, drop backlog"],
];
const state = { csrf: null, failuresOffset: 0, failuresLimit: 25, selected: new Set(), cards: new Map(),
  maps: [], busy: false };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function modeSelect(label) {
  const s = el("select", { class: "mode-select", "aria-label": label });
  for (const [value, text] of MODES) s.append(el("option", { value, text }));
  return s;
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const res = await fetch(path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("logged out"); }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.message || res.status + " " + res.statusText);
  return data;
}

function notice(text, ok = false) {
  const n = $("notice");
  n.textContent = text; n.hidden = !text; n.classList.toggle("ok", ok);
  clearTimeout(notice.timer);
  if (text) notice.timer = setTimeout(() => { n.hidden = true; }, 8000);
}

async function act(label, fn) {
  try {
    const r = await fn();
    notice(label + ": done" + (typeof r === "string" || typeof r === "number" ? " (" + r + ")" : ""), true);
  }
  catch (e) { notice(label + " failed: " + e.message); }
  refresh();
}

// ---------------------------------------------------------------- formatting

// "1 recent failure", "2 recent failures": the count and the word that goes with it.
const plural = (n, one, many = one + "s") => `${n} ${Number(n) === 1 ? one : many}`;
const fmtNum = (n, d = 1) => (n == null ? "–" : Number(n).toFixed(d).replace(/\.0+$/, ""));
function fmtDur(s) {
  if (s == null) return "–";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 120) return fmtNum(s) + " s";
  if (s < 7200) return fmtNum(s / 60) + " min";
  return fmtNum(s / 3600) + " h";
}
function fmtWhen(iso) {
  if (!iso) return "–";
  const t = new Date(iso), age = (Date.now() - t.getTime()) / 1000;
  return t.toLocaleTimeString() + (age > 0 && age < 86400 ? " (" + fmtDur(age) + " ago)" : "");
}

// ---------------------------------------------------------------- map cards

function makeCard(entity) {
  const c = { entity };
  c.badge = el("span", { class: "badge" });
  c.reason = el("p", { class: "reason" });
  c.fig = {};
  const figures = el("dl", { class: "figures" });
  for (const [key, label] of [["depth", "queued"], ["lag", "lag"], ["ok", "applied"],
    ["cds", "cds→scm /min"], ["scm", "scm→cds /min"], ["failed", "failed"]]) {
    c.fig[key] = el("dd", { "data-figure": key });
    figures.append(el("div", {}, el("dt", { text: label }), c.fig[key]));
  }
  c.latency = el("p", { class: "latency" });
  c.charts = dwCharts.create(entity); // charts.js: throughput, latency, lag over the last hour
  c.lastError = el("p", { class: "last-error" });
  c.pause = el("button", { type: "button", class: "danger", text: "Pause",
    onclick: () => act("pause " + entity, () => api("POST", `/api/maps/${encodeURIComponent(entity)}/pause`, {})) });
  c.mode = modeSelect("Resume mode for " + entity);
  c.resume = el("button", { type: "button", text: "Resume",
    onclick: () => act("resume " + entity, async () => {
      const r = await api("POST", `/api/maps/${encodeURIComponent(entity)}/resume`, { mode: c.mode.value });
      return plural(r.backlog, "backlog event") + " " + r.mode;
    }) });
  c.resumeGroup = el("span", { class: "controls" }, c.mode, c.resume);
  const lifecycle = lifecycleButtons(c, entity); // activity.js: Stop / Start
  c.root = el("article", { class: "card", "data-entity": entity },
    el("header", {}, el("h3", { text: entity }), c.badge), c.reason, figures, c.latency, c.charts.root,
    c.lastError, el("div", { class: "controls" }, c.pause, c.resumeGroup, lifecycle));
  return c;
}

function updateCard(c, m) {
  c.root.className = "card state-" + m.state + (m.failing ? " failing" : "");
  c.badge.textContent = m.state === "running" && m.failing ? "failing" : m.state;
  c.reason.textContent = m.state !== "running" ? (m.reason || m.state) : "";
  const dir = Object.fromEntries(m.directions.map((d) => [d.direction, d]));
  const cds = dir["cds->scm"] || {}, scm = dir["scm->cds"] || {};
  c.fig.depth.textContent = m.queue_depth ?? "–";
  c.fig.lag.textContent = fmtDur(m.lag_s);
  c.fig.ok.textContent = m.success;
  c.fig.cds.textContent = fmtNum(cds.applied_per_minute, 0);
  c.fig.scm.textContent = fmtNum(scm.applied_per_minute, 0);
  c.fig.failed.textContent = m.failures + (m.recent_failures ? ` (${m.recent_failures} recent)` : "");
  const lat = (d) => `p50 ${fmtDur(d.p50_s)} · p95 ${fmtDur(d.p95_s)} · p99 ${fmtDur(d.p99_s)}`;
  c.latency.textContent = `latency cds→scm ${lat(cds)}  |  scm→cds ${lat(scm)}`;
  c.lastError.textContent = m.last_error
    ? `last error ${fmtWhen(m.last_error.at)} [${m.last_error.direction}, ${m.last_error.kind}]: ${m.last_error.message}` : "";
  updateLifecycleButtons(c, m); // activity.js: badge, and which of Pause/Resume/Stop/Start show
}

function renderMaps(data) {
  const box = $("maps");
  state.maps = data.maps.map((m) => m.entity);
  for (const m of data.maps) {
    let c = state.cards.get(m.entity);
    if (!c) { c = makeCard(m.entity); state.cards.set(m.entity, c); box.append(c.root); }
    updateCard(c, m);
  }
  const bad = data.maps.filter((m) => m.state !== "running" || m.failing);
  const banner = $("banner");
  banner.replaceChildren(...bad.map((m) => el("div", { "data-entity": m.entity,
    text: `⚠ ${m.entity} is ${m.state === "running" ? "failing" : m.state.toUpperCase()}` +
      (m.state !== "running" ? ": " + (m.reason || "") : `: ${plural(m.recent_failures, "recent failure")}` +
        (m.last_error ? " — " + m.last_error.message : "")) })));
  banner.hidden = bad.length === 0;
  const overall = $("overall");
  overall.textContent = bad.length
    ? `${plural(bad.length, "map")} ${bad.length === 1 ? "needs" : "need"} attention`
    : data.maps.length === 1 ? "the map is healthy" : `all ${data.maps.length} maps healthy`;
  overall.classList.toggle("bad", bad.length > 0);
  fillEntitySelect($("failures-entity"), true);
  fillEntitySelect($("resync-entity"), false);
}

function fillEntitySelect(select, withAll) {
  const want = (withAll ? [""] : []).concat(state.maps);
  const have = Array.from(select.options).map((o) => o.value);
  if (want.join("|") === have.join("|")) return;
  const keep = select.value;
  select.replaceChildren(...want.map((v) => el("option", { value: v, text: v || "all" })));
  if (want.includes(keep)) select.value = keep;
}

// ---------------------------------------------------------------- failures and dead letters

function renderFailures(page) {
  const body = $("failures").tBodies[0];
  // data-label: the column's name, shown beside each value when a phone stacks the rows (style.css).
  const td = (label, text, cls) => el("td", { "data-label": label, text, ...(cls ? { class: cls } : {}) });
  body.replaceChildren(...page.items.map((f) => el("tr", { "data-id": f.id },
    td("when", fmtWhen(f.occurred_at)), td("map", f.entity),
    td("record", `${f.company} / ${f.key}`), td("direction", f.direction), td("op", f.operation),
    td("kind", f.kind + (f.compensated ? " (compensated)" : "")),
    td("target system said", f.target_message || "", "msg"), td("source system said", f.source_message || "", "msg"),
    td("attempts", String(f.attempts)), failureStateCell(f),
    el("td", { class: "row-actions" }, el("button", { type: "button", class: "secondary", text: "Retry",
      onclick: () => act("retry failure " + f.id, () => api("POST", `/api/failures/${f.id}/retry`, {}).then(() => "requeued")) }),
      " ", discardButton(f)))));
  $("failures-total").textContent = `(${page.total})`;
  $("failures-empty").hidden = page.items.length > 0;
  const end = page.offset + page.items.length;
  $("failures-range").textContent = page.total ? `${page.offset + 1}–${end} of ${page.total}` : "";
  $("failures-prev").disabled = page.offset === 0;
  $("failures-next").disabled = end >= page.total;
}

function renderDeadLetters(page) {
  const body = $("deadletters").tBodies[0];
  const seqs = new Set(page.items.map((d) => d.seq));
  for (const s of [...state.selected]) if (!seqs.has(s)) state.selected.delete(s);
  body.replaceChildren(...page.items.map((d) => {
    const box = el("input", { type: "checkbox", "aria-label": "select " + d.seq,
      onchange: (e) => { e.target.checked ? state.selected.add(d.seq) : state.selected.delete(d.seq); } });
    box.checked = state.selected.has(d.seq);
    return el("tr", { "data-seq": d.seq }, el("td", {}, box), el("td", { text: d.seq }), el("td", { text: d.entity }),
      el("td", { text: `${d.company} / ${d.key}` }), el("td", { text: d.operation }), el("td", { text: d.source }),
      el("td", { text: d.attempts }), el("td", { class: "msg", text: d.reason }), el("td", { text: fmtWhen(d.dead_lettered_at) }),
      el("td", {}, el("button", { type: "button", class: "secondary", text: "Replay",
        onclick: () => act("replay " + d.seq, () => api("POST", "/api/deadletters/replay", { seqs: [d.seq] }).then((r) => r.count)) }),
      " ", el("button", { type: "button", class: "danger", text: "Discard",
        onclick: () => act("discard " + d.seq, () => api("POST", "/api/deadletters/discard", { seqs: [d.seq] }).then((r) => r.count)) })));
  }));
  $("dl-count").textContent = `(${page.items.length}${page.items.length === page.limit ? "+" : ""})`;
  $("dl-empty").hidden = page.items.length > 0;
}

function bulk(action, all) {
  const body = all ? { all: true } : { seqs: [...state.selected] };
  if (!all && body.seqs.length === 0) { notice("select dead letters first"); return; }
  if (action === "discard" && !confirm(all ? "Discard ALL dead letters for good?" : `Discard ${plural(body.seqs.length, "dead letter")} for good?`)) return;
  act(action + (all ? " all" : " selected"), () => api("POST", "/api/deadletters/" + action, body).then((r) => {
    state.selected.clear(); return plural(r.count, "dead letter"); }));
}

// Alert rules: alerts.js; parked conflicts: conflicts.js (each polls on its own).

// ---------------------------------------------------------------- polling

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const entity = $("failures-entity").value;
    const q = new URLSearchParams({ offset: state.failuresOffset, limit: state.failuresLimit });
    if (entity) q.set("entity", entity);
    if (failureStateFilter()) q.set("state", failureStateFilter());
    const [maps, series, failures, dead] = await Promise.all([
      api("GET", "/api/maps"), api("GET", "/api/series"), api("GET", "/api/failures?" + q),
      api("GET", "/api/deadletters?limit=100")]);
    renderMaps(maps);
    document.dispatchEvent(new CustomEvent("dualwrite:maps", { detail: maps }));  // systems.js
    for (const s of series.maps) {
      const c = state.cards.get(s.entity);
      if (c) dwCharts.update(c.charts, s, series.start, series.step_s);
    }
    renderFailures(failures);
    renderDeadLetters(dead);
    await refreshActivity();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "true";
  } catch (e) {
    $("updated").textContent = "update failed: " + e.message;
  } finally {
    state.busy = false;
  }
}

async function start() {
  for (const [value, text] of MODES) $("all-mode").append(el("option", { value, text }));
  $("pause-all").addEventListener("click", () => act("pause all", () => api("POST", "/api/pause", {})));
  $("resume-all").addEventListener("click", () => act("resume all",
    () => api("POST", "/api/resume", { mode: $("all-mode").value }).then((r) => plural(r.backlog, "backlog event"))));
  $("logout").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": state.csrf || "" }, credentials: "same-origin" });
    location.href = "/login";
  });
  startLifecycle();
  $("failures-entity").addEventListener("change", () => { state.failuresOffset = 0; refresh(); });
  $("failures-prev").addEventListener("click", () => { state.failuresOffset = Math.max(0, state.failuresOffset - state.failuresLimit); refresh(); });
  $("failures-next").addEventListener("click", () => { state.failuresOffset += state.failuresLimit; refresh(); });
  $("dl-select-all").addEventListener("change", (e) => {
    for (const box of $("deadletters").tBodies[0].querySelectorAll("input[type=checkbox]")) {
      box.checked = e.target.checked; box.dispatchEvent(new Event("change"));
    }
  });
  $("dl-replay-selected").addEventListener("click", () => bulk("replay", false));
  $("dl-discard-selected").addEventListener("click", () => bulk("discard", false));
  $("dl-replay-all").addEventListener("click", () => bulk("replay", true));
  $("dl-discard-all").addEventListener("click", () => bulk("discard", true));
  $("resync-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const body = { entity: f.get("entity"), company: f.get("company"), key: f.get("key"), from: f.get("from") };
    api("POST", "/api/resync", body)
      .then((r) => { $("resync-result").textContent = `${r.entity} ${r.company}/${r.key} from ${r.from}: ${r.outcome} ${r.message}`; })
      .catch((err) => { $("resync-result").textContent = "resync failed: " + err.message; });
  });
  try { state.csrf = (await api("GET", "/api/session")).csrf_token; } catch (e) { return; }
  await refresh();
  setInterval(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
