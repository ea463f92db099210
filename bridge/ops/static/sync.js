// The initial sync view: the running (or last) run's figures per map and side, live (GET
// /api/sync/initial: read, written, unchanged, failed, skipped; rate and time left), and every record a
// sync run could not bring together (GET /api/sync/errors), paged and filtered by map, company and
// state, with both systems' messages and the payload. Uses app.js's helpers (el, api, $, fmtWhen).
"use strict";

const syncView = { offset: 0, limit: 25, busy: false };
const SIDES = [["cds", "Dataverse"], ["scm", "F&O"]];
const FIGURES = ["read", "written", "unchanged", "failed", "skipped"];

function fmtEta(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return `${Math.round(s)} s`;
  return s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}

function renderInitial(run) {
  const summary = $("initial-summary");
  const body = $("initial").tBodies[0];
  if (!run) {
    summary.textContent = "No initial sync ran since the bridge started (dualwrite sync initial starts one).";
    body.replaceChildren();
    $("initial").hidden = true;
    return;
  }
  $("initial").hidden = false;
  const verb = run.dry_run ? "dry run" : "run";
  summary.replaceChildren(
    el("strong", { text: `${verb} ${run.run_id}: ${run.status}` }),
    ` · master ${run.master === "cds" ? "Dataverse" : "F&O"} · ${run.records_read.toLocaleString()} read`
      + `${run.expected ? " of " + run.expected.toLocaleString() : ""} · ${run.written.toLocaleString()}`
      + ` ${run.dry_run ? "to write" : "written"} · ${run.failed.toLocaleString()} failed`
      + ` · ${Math.round(run.rate_per_min).toLocaleString()} records/min · ETA ${fmtEta(run.eta_s)}`
      + (run.message ? ` · ${run.message}` : ""));
  summary.dataset.status = run.status;
  const rows = [];
  for (const [name, m] of Object.entries(run.maps)) {
    for (const [side, label] of SIDES) {
      const f = m[side];
      rows.push(el("tr", { "data-map": name, "data-side": side },
        el("td", { text: side === "cds" ? name : "" }),
        el("td", { text: side === "cds" ? `${m.state}${m.company ? " · " + m.company : ""}${m.pass > 1 ? " · pass " + m.pass : ""}` : "" }),
        el("td", { text: label }),
        ...FIGURES.map((k) => el("td", { class: "num" + (k === "failed" && f[k] ? " bad" : ""), "data-figure": k, text: f[k].toLocaleString() }))));
    }
  }
  body.replaceChildren(...rows);
}

function renderSyncErrors(page) {
  const body = $("sync-errors").tBodies[0];
  body.replaceChildren(...page.items.map((e) => el("tr", { "data-key": e.key, "data-map": e.map },
    el("td", { text: fmtWhen(e.occurred_at) }),
    el("td", { text: e.map }),
    el("td", { text: `${e.company}/${e.key}` }),
    el("td", { text: `${e.operation} → ${e.target === "cds" ? "Dataverse" : "F&O"}` }),
    el("td", { class: "msg", text: `${e.status ?? ""} ${e.code ?? ""} ${e.target_message ?? ""}`.trim() }),
    el("td", { class: "msg", text: e.source_message ?? "" }),
    el("td", { class: "msg" }, el("code", { text: JSON.stringify(e.payload) })),
    el("td", { text: e.resolved_at ? "resolved " + fmtWhen(e.resolved_at) : "open" }))));
  $("sync-errors-total").textContent = page.total ? String(page.total) : "";
  $("sync-errors-empty").hidden = page.items.length > 0;
  const end = page.offset + page.items.length;
  $("sync-errors-range").textContent = page.total ? `${page.offset + 1}–${end} of ${page.total}` : "";
  $("sync-errors-prev").disabled = page.offset === 0;
  $("sync-errors-next").disabled = end >= page.total;
}

async function refreshSync() {
  if (syncView.busy) return;
  syncView.busy = true;
  try {
    renderInitial((await api("GET", "/api/sync/initial")).run);
    const q = new URLSearchParams({ offset: syncView.offset, limit: syncView.limit, state: $("sync-errors-state").value });
    const map = $("sync-errors-map").value, company = $("sync-errors-company").value.trim();
    if (map) q.set("map", map);
    if (company) q.set("company", company);
    renderSyncErrors(await api("GET", "/api/sync/errors?" + q));
    fillEntitySelect($("sync-errors-map"), true);
  } catch (e) {
    $("sync-errors-empty").textContent = "sync errors not loaded: " + e.message;
    $("sync-errors-empty").hidden = false;
  } finally { syncView.busy = false; }
}

document.addEventListener("DOMContentLoaded", () => {
  const again = () => { syncView.offset = 0; refreshSync(); };
  $("sync-errors-map").addEventListener("change", again);
  $("sync-errors-state").addEventListener("change", again);
  $("sync-errors-company").addEventListener("change", again);
  $("sync-errors-prev").addEventListener("click", () => { syncView.offset = Math.max(0, syncView.offset - syncView.limit); refreshSync(); });
  $("sync-errors-next").addEventListener("click", () => { syncView.offset += syncView.limit; refreshSync(); });
  refreshSync();
  setInterval(refreshSync, POLL_MS);
});
