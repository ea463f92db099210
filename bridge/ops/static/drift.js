// The drift view: each map's last drift check (GET /api/drift), what drifted, and buttons to check a
// map now or repair it from one side (POST /api/drift/check). Uses app.js's helpers; polls on its own.
"use strict";

const driftView = { busy: false, running: false };
const SIDE_NAME = { cds: "Dataverse", scm: "F&O" };

function driftWhat(r) {
  if (r.missing_on) return `missing on ${SIDE_NAME[r.missing_on]}`;
  const cds = r.fields.cds || [], scm = r.fields.scm || [];
  if (!cds.length && r.fields.error) return "differs: " + r.fields.error.join("; ");
  return "differs: " + cds.map((c, i) => `${c} / ${scm[i] || ""}`).join(", ");
}

function driftCheck(entity, from) {
  const body = { maps: [entity] };
  if (from) { body.repair = true; body.from = from; }
  const label = from ? `repair ${entity} from ${SIDE_NAME[from]}` : `drift check of ${entity}`;
  driftView.running = true;
  renderDriftRunning();
  act(label, () => api("POST", "/api/drift/check", body).then((r) => {
    const repaired = from ? `, ${r.repaired} repaired` : "";
    return `${plural(r.drifted, "record")} drifted${repaired}`;
  }).finally(() => { driftView.running = false; refreshDrift(); }));
}

function renderDriftRunning() {
  for (const b of document.querySelectorAll("#drift button")) b.disabled = driftView.running;
}

function driftRow(m) {
  const cds = m.sides.cds, scm = m.sides.scm;
  const cls = m.error ? "failing" : m.drifted ? "differs" : "";
  const summary = m.error ? `not finished: ${m.error}`
    : m.drifted ? `${m.drifted} drifted (missing on Dataverse ${cds.missing}, on F&O ${scm.missing}, different ${m.different})`
      : "no drift";
  const repaired = m.repaired_from ? `${m.repaired} repaired from ${SIDE_NAME[m.repaired_from]}${m.repair_failed ? `, ${m.repair_failed} failed` : ""}` : "";
  const buttons = el("div", { class: "controls nowrap" },
    el("button", { type: "button", class: "secondary", text: "Check now", onclick: () => driftCheck(m.entity, null) }));
  if (m.drifted) {
    buttons.append(
      el("button", { type: "button", text: "Repair from Dataverse", onclick: () => driftCheck(m.entity, "cds") }),
      el("button", { type: "button", text: "Repair from F&O", onclick: () => driftCheck(m.entity, "scm") }));
  }
  const records = el("ul", { class: "drifted" });
  for (const r of m.drift) {
    records.append(el("li", {}, el("code", { text: `${r.company}/${r.key}` }), " " + driftWhat(r),
      r.repair ? el("span", { class: "muted", text: ` (repair: ${r.repair})` }) : null));
  }
  if (m.drifted > m.drift.length) records.append(el("li", { class: "muted", text: `… ${m.drifted - m.drift.length} more (GET /api/drift/${m.entity})` }));
  return el("tr", { class: cls, "data-entity": m.entity },
    el("td", { text: m.entity }), el("td", { text: fmtWhen(m.finished_at) }),
    el("td", { text: `${cds.read} / ${scm.read}` }), el("td", {}, summary, m.drift.length ? records : null),
    el("td", { text: repaired }), el("td", {}, buttons));
}

function renderDrift(data) {
  const tbody = $("drift").querySelector("tbody");
  tbody.replaceChildren(...data.maps.map(driftRow));
  $("drift-empty").hidden = data.maps.length > 0;
  $("drift-schedule").textContent = data.check_every_minutes
    ? `Checked every ${plural(data.check_every_minutes, "minute")} ([drift] check_every_minutes).`
    : "No schedule ([drift] check_every_minutes = 0): check from here or with dualwrite sync check.";
  driftView.running = driftView.running || data.checking;
  $("drift-checking").hidden = !driftView.running;
  renderDriftRunning();
}

async function refreshDrift() {
  if (driftView.busy) return;
  driftView.busy = true;
  try { renderDrift(await api("GET", "/api/drift")); }
  catch (e) { $("drift-empty").textContent = "drift not loaded: " + e.message; $("drift-empty").hidden = false; }
  finally { driftView.busy = false; }
}

document.addEventListener("DOMContentLoaded", () => {
  $("drift-check-all").addEventListener("click", () => {
    driftView.running = true;
    renderDriftRunning();
    act("drift check of every map", () => api("POST", "/api/drift/check", {})
      .then((r) => `${plural(r.drifted, "record")} drifted`)
      .finally(() => { driftView.running = false; refreshDrift(); }));
  });
  refreshDrift();
  setInterval(refreshDrift, POLL_MS * 5);
});
