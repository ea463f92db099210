// dualwrite dashboard: the "Systems" section (GET /api/systems) and the "retrying" line of each map
// card (GET /api/maps' retrying). Uses app.js' helpers (api, el, fmtWhen, fmtDur); runs each time
// app.js has drawn the maps (its "dualwrite:maps" event), so it follows the same 2 s polling.
// Every value from the API goes into the page through textContent (never innerHTML).
"use strict";

const systemsView = { root: null, blocks: new Map(), busy: false, refresh: false };

// ---------------------------------------------------------------- the retrying line of a map card

function showRetrying(maps) {
  for (const m of maps.maps) {
    const card = document.querySelector(`article.card[data-entity="${CSS.escape(m.entity)}"]`);
    if (!card) continue;
    let line = card.querySelector(".retrying");
    if (!line) {
      line = el("p", { class: "retrying", "data-figure": "retrying", role: "status" });
      const anchor = card.querySelector(".last-error");
      anchor ? anchor.before(line) : card.append(line);
    }
    const r = m.retrying;
    card.classList.toggle("retrying-now", Boolean(r));
    line.hidden = !r;
    if (!r) { line.replaceChildren(); continue; }
    const wait = (new Date(r.next_attempt_at).getTime() - Date.now()) / 1000;
    const next = wait > 0 ? `next attempt in ${fmtDur(wait)}` : "next attempt now";
    line.replaceChildren(el("strong", { text: "retrying" }),
      ` ${r.count} change${r.count === 1 ? "" : "s"} · ${next} · `, el("span", { class: "msg", text: r.error }));
  }
}

// ---------------------------------------------------------------- the Systems section

function systemsSection() {
  if (systemsView.root) return systemsView.root;
  const reread = el("button", { type: "button", class: "secondary", text: "Read registrations again",
    onclick: () => { systemsView.refresh = true; loadSystems(); } });
  systemsView.grid = el("div", { class: "systems" });
  systemsView.reg = el("div", { class: "registrations" });
  systemsView.root = el("section", { id: "systems", class: "panel", "aria-labelledby": "systems-title" },
    el("div", { class: "panel-head" }, el("h2", { id: "systems-title", text: "Systems" }),
      el("div", { class: "toolbar" }, reread)),
    systemsView.grid, systemsView.reg);
  $("maps").after(systemsView.root);
  return systemsView.root;
}

function reachability(s) {
  if (s.reachable === null) return ["no call yet", "unknown"];
  if (!s.reachable) return ["unreachable", "bad"];
  if (s.last_status === 429) return ["throttling", "warn"];
  if (s.last_status >= 500) return ["answering " + s.last_status, "warn"];
  return ["reachable", "ok"];
}

function tokenText(t) {
  if (t.state === "failing") return "failing: " + (t.error || "");
  if (t.state === "valid") return "valid until " + new Date(t.expires_at).toLocaleTimeString();
  if (t.state === "expired") return "expired " + fmtWhen(t.expires_at);
  return "not requested yet";
}

function renderSystem(s) {
  let b = systemsView.blocks.get(s.system);
  if (!b) {
    b = { pill: el("span", { class: "pill" }), fig: {} };
    const figures = el("dl", { class: "figures" });
    for (const [key, label] of [["answer", "last answer"], ["throttled", "429s"], ["waited", "Retry-After waited"],
      ["network", "network errors"], ["token", "token"]]) {
      b.fig[key] = el("dd", { "data-figure": key });
      figures.append(el("div", {}, el("dt", { text: label }), b.fig[key]));
    }
    b.url = el("p", { class: "muted url" });
    b.error = el("p", { class: "last-error" });
    b.root = el("article", { class: "system", "data-system": s.system },
      el("header", {}, el("h3", { text: s.title }), b.pill), b.url, figures, b.error);
    systemsView.grid.append(b.root);
    systemsView.blocks.set(s.system, b);
  }
  const [text, tone] = reachability(s);
  b.pill.textContent = text;
  b.pill.className = "pill " + tone;
  b.url.textContent = s.url;
  b.fig.answer.textContent = s.last_answer_at ? `${fmtWhen(s.last_answer_at)} · ${s.last_status}` : "–";
  b.fig.throttled.textContent = s.throttled;
  b.fig.waited.textContent = fmtDur(s.retry_after_waited_s);
  b.fig.network.textContent = s.network_errors;
  b.fig.token.textContent = tokenText(s.token);
  b.fig.token.classList.toggle("bad", s.token.state === "failing" || s.token.state === "expired");
  b.error.textContent = s.last_error ? `last error ${fmtWhen(s.last_error_at)}: ${s.last_error}` : "";
}

function renderRegistrations(reg) {
  const box = systemsView.reg;
  if (!reg) { box.replaceChildren(el("p", { class: "muted", text: "Registrations are not read by this bridge." })); return; }
  const head = el("h3", { text: "Webhook registrations on Dataverse" });
  const when = el("span", { class: "muted", text: " read " + fmtWhen(reg.checked_at) });
  if (reg.error) {
    box.replaceChildren(el("div", {}, head, when), el("p", { class: "last-error", text: "could not read them: " + reg.error }));
    return;
  }
  const endpoints = el("ul", { class: "endpoints" }, ...reg.endpoints.map((e) =>
    el("li", { text: `${e.name}${e.ours ? " (this bridge's)" : ""}: ${e.url || "no URL"}` })));
  const summary = el("p", { class: reg.missing ? "reason" : "muted",
    text: reg.missing ? `${reg.missing} step(s) missing or disabled: run dualwrite register` : "every step the maps need is registered" });
  const rows = reg.steps.map((s) => el("tr", { "data-step": s.name, class: s.found && s.enabled ? "" : "missing" },
    el("td", { text: s.map }), el("td", { text: s.message }), el("td", { text: s.name }),
    el("td", { text: s.found ? "yes" : "missing" }), el("td", { text: s.mode || "–" }),
    el("td", { text: s.enabled === null ? "–" : s.enabled ? "enabled" : "disabled" })));
  const table = el("table", { id: "registrations" },
    el("thead", {}, el("tr", {}, ...["map", "message", "step", "found", "mode", "state"].map((t) => el("th", { text: t })))),
    el("tbody", {}, ...rows));
  box.replaceChildren(el("div", {}, head, when), endpoints.childElementCount ? endpoints
    : el("p", { class: "reason", text: "no webhook endpoint registered" }), summary, el("div", { class: "table-wrap" }, table));
}

async function loadSystems() {
  if (systemsView.busy) return;
  systemsView.busy = true;
  try {
    systemsSection();
    const data = await api("GET", "/api/systems" + (systemsView.refresh ? "?refresh=true" : ""));
    systemsView.refresh = false;
    for (const s of data.systems) renderSystem(s);
    renderRegistrations(data.registrations);
    systemsView.root.dataset.loaded = "true";
  } catch (e) {
    systemsView.reg.replaceChildren(el("p", { class: "last-error", text: "systems: " + e.message }));
  } finally {
    systemsView.busy = false;
  }
}

document.addEventListener("dualwrite:maps", (e) => { showRetrying(e.detail); loadSystems(); });
