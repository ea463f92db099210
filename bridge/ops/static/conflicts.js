// The parked conflicts view (conflict_policy: manual): both versions side by side, the differing
// fields marked; the admin picks the winner, may edit its values, and Apply writes it to both
// systems (POST /api/conflicts/{id}/resolve). Uses app.js's helpers; polls on its own.
"use strict";

const conflictView = { items: new Map(), busy: false };

function shown(value) {
  return value === null || value === undefined ? "" : String(value);
}

function parsedLike(original, text) {
  if (typeof original === "number" && text.trim() !== "" && !Number.isNaN(Number(text))) return Number(text);
  if (typeof original === "boolean") return text === "true";
  if (original === null && text === "") return null;
  return text;
}

function conflictArticle(c) {
  const item = { winner: null, inputs: { cds: [], scm: [] } };
  const table = el("table", { class: "versions" },
    el("thead", {}, el("tr", {}, el("th", { text: "field" }),
      el("th", { text: "Dataverse (CDS)" }), el("th", { text: "Finance and Operations (SCM)" }))));
  const tbody = el("tbody");
  for (const f of c.fields) {
    const cells = {};
    for (const side of ["cds", "scm"]) {
      const value = side === "cds" ? f.cds_value : f.scm_value;
      const input = el("input", { type: "text", readonly: "", "aria-label": `${side} ${f[side]}`, "data-side": side, "data-column": f[side] });
      input.value = shown(value);
      const editable = side === "cds" ? f.cds_editable : f.scm_editable;
      item.inputs[side].push({ input, column: f[side], original: value, editable });
      cells[side] = el("td", {}, input);
    }
    tbody.append(el("tr", { class: f.differs ? "differs" : "" },
      el("td", {}, el("code", { text: f.cds }), " / ", el("code", { text: f.scm })), cells.cds, cells.scm));
  }
  table.append(tbody);
  const apply = el("button", { type: "button", text: "Apply to both systems", disabled: "" });
  const choose = (side) => {
    item.winner = side;
    for (const s of ["cds", "scm"]) {
      for (const i of item.inputs[s]) {
        const open = s === side && i.editable;
        if (open) i.input.removeAttribute("readonly"); else { i.input.setAttribute("readonly", ""); if (s !== side) i.input.value = shown(i.original); }
      }
    }
    article.classList.toggle("win-cds", side === "cds");
    article.classList.toggle("win-scm", side === "scm");
    apply.removeAttribute("disabled");
    apply.textContent = `Apply ${side === "cds" ? "Dataverse" : "F&O"}'s version to both systems`;
  };
  const pickCds = el("button", { type: "button", class: "secondary", text: "Keep Dataverse", onclick: () => choose("cds") });
  const pickScm = el("button", { type: "button", class: "secondary", text: "Keep F&O", onclick: () => choose("scm") });
  apply.addEventListener("click", () => {
    const values = {};
    for (const i of item.inputs[item.winner]) {
      if (i.editable && i.input.value !== shown(i.original)) values[i.column] = parsedLike(i.original, i.input.value);
    }
    act(`conflict ${c.id}`, () => api("POST", `/api/conflicts/${c.id}/resolve`, { winner: item.winner, values })
      .then((r) => { refreshConflicts(); return r.message; }));
  });
  const when = c.detected_at ? new Date(c.detected_at).toLocaleString() : "";
  const article = el("article", { class: "conflict", "data-id": String(c.id), "data-key": c.key },
    el("header", {}, el("strong", { text: `${c.entity} ${c.company}/${c.key}` }),
      el("span", { class: "muted", text: ` conflict ${c.id}, parked ${when}` })),
    table, el("div", { class: "controls" }, pickCds, pickScm, apply));
  item.article = article;
  return item;
}

function renderConflicts(data) {
  const list = $("conflicts");
  const seen = new Set();
  for (const c of data.items) {
    seen.add(c.id);
    if (!conflictView.items.has(c.id)) {
      const item = conflictArticle(c);
      conflictView.items.set(c.id, item);
      list.append(item.article);
    }
  }
  for (const [id, item] of conflictView.items) if (!seen.has(id)) { item.article.remove(); conflictView.items.delete(id); }
  $("conflicts-count").textContent = data.items.length ? String(data.items.length) : "";
  $("conflicts-empty").hidden = data.items.length > 0;
}

async function refreshConflicts() {
  if (conflictView.busy) return;
  conflictView.busy = true;
  try { renderConflicts(await api("GET", "/api/conflicts?status=open")); }
  catch (e) { $("conflicts-empty").textContent = "conflicts not loaded: " + e.message; $("conflicts-empty").hidden = false; }
  finally { conflictView.busy = false; }
}

document.addEventListener("DOMContentLoaded", () => { refreshConflicts(); setInterval(refreshConflicts, POLL_MS); });
