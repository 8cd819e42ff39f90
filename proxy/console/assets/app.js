// Cairn console (issue 18). Plain ES module, no build step, no dependency.
// Every byte of data comes from this origin's admin API; the admin token is
// kept in sessionStorage and sent only as a bearer header.
import { renderMarkdown } from "./markdown.js";

const TOKEN_KEY = "cairn.adminToken";
const SAMPLES_SHOWN = 10; // per phase, before "Show all"
const main = document.getElementById("main");
const banner = document.getElementById("auth-banner");

// ---------- small DOM helpers (text only: nothing from the API becomes HTML) ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

// ---------- figures: rounded one way everywhere (as the postmortem does) ----------

function pct(x) {
  if (x === null || x === undefined || !isFinite(x)) return "—";
  return String(Math.round(x * 1000) / 10) + "%";
}
function usd(v) {
  if (v === null || v === undefined || !isFinite(v)) return "—";
  if (v === 0) return "$0";
  const a = Math.abs(v);
  if (a >= 1) return "$" + v.toFixed(2);
  const dec = Math.min(8, 2 - Math.floor(Math.log10(a)));
  return "$" + Number(v.toFixed(dec)).toString();
}
function fmtValue(unit, v) {
  if (v === null || v === undefined || !isFinite(v)) return "—";
  switch (unit) {
    case "ms": return Math.round(v) + " ms";
    case "tokens": return String(Math.round(v));
    case "usd": return usd(v);
    case "score": return String(Number(v.toPrecision(4)));
  }
  return pct(v);
}
function fmtDur(ms) {
  if (!(ms > 0)) return "0s";
  if (ms < 1000) return Math.round(ms) + "ms";
  const s = ms / 1000;
  if (s < 60) return (Math.round(s * 10) / 10) + "s";
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  if (m < 60) return r ? `${m}m${r}s` : `${m}m`;
  const hh = Math.floor(m / 60), mm = m % 60;
  return mm ? `${hh}h${mm}m` : `${hh}h`;
}
function isZeroTime(t) { return !t || t.startsWith("0001-01-01"); }
function when(t) {
  if (isZeroTime(t)) return h("span", { class: "muted" }, "—");
  const d = new Date(t);
  const text = d.toISOString().replace("T", " ").replace("Z", "") + " UTC";
  return h("time", { datetime: d.toISOString() }, text);
}

// ---------- the admin API ----------

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function setUnauthorized(on) {
  if (on) {
    banner.textContent = token()
      ? "Not authorized: the admin API refused this token (401). Every call is refused until you enter the right one."
      : "Not authorized: the admin API needs a token (401). Every call is refused until you enter it.";
    banner.append(" ", h("button", { type: "button", class: "secondary", onclick: openTokenDialog }, "Enter token"));
    banner.hidden = false;
  } else {
    banner.hidden = true;
    clear(banner);
  }
}

async function api(path, { method = "GET", body, text = false } = {}) {
  const headers = { Accept: text ? "text/plain, text/markdown, image/svg+xml" : "application/json" };
  const tok = token();
  if (tok) headers.Authorization = "Bearer " + tok;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit", redirect: "error" });
  } catch (e) {
    throw new APIError(0, "the admin API did not answer: " + e.message);
  }
  if (res.status === 401) {
    setUnauthorized(true);
    throw new APIError(401, "refused: missing or wrong admin token (401)");
  }
  setUnauthorized(false);
  const raw = await res.text();
  if (!res.ok) {
    let msg = raw;
    try { msg = JSON.parse(raw).error.message; } catch { /* not JSON */ }
    throw new APIError(res.status, `${res.status}: ${msg}`);
  }
  if (text) return raw;
  return JSON.parse(raw);
}

// ---------- token and confirmation dialogs ----------

const tokenDialog = document.getElementById("token-dialog");
const tokenInput = document.getElementById("token-input");
function openTokenDialog() {
  tokenInput.value = "";
  tokenDialog.showModal();
  tokenInput.focus();
}
document.getElementById("token-button").addEventListener("click", openTokenDialog);
document.getElementById("token-cancel").addEventListener("click", () => tokenDialog.close());
document.getElementById("token-forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  tokenDialog.close();
  route();
});
document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const v = tokenInput.value.trim();
  if (v) sessionStorage.setItem(TOKEN_KEY, v);
  tokenInput.value = "";
  tokenDialog.close();
  route();
});

const confirmDialog = document.getElementById("confirm-dialog");
let confirmResolve = null;
// confirmAction shows a real <dialog> and resolves to the typed reason, or
// null when cancelled (button, Escape).
function confirmAction(title, text, okLabel) {
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  const reason = document.getElementById("confirm-reason");
  reason.value = "";
  confirmDialog.showModal();
  reason.focus();
  return new Promise((resolve) => { confirmResolve = resolve; });
}
function finishConfirm(v) {
  if (confirmResolve) { const r = confirmResolve; confirmResolve = null; r(v); }
  if (confirmDialog.open) confirmDialog.close();
}
document.getElementById("confirm-cancel").addEventListener("click", () => finishConfirm(null));
confirmDialog.addEventListener("close", () => finishConfirm(null));
document.getElementById("confirm-form").addEventListener("submit", (e) => {
  e.preventDefault();
  finishConfirm(document.getElementById("confirm-reason").value.trim() || "from the console");
});

// ---------- routing (hash: #/overview, #/incidents, #/incidents/ID, #/requests/ID) ----------

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [pathPart, query = ""] = raw.split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query) };
}

let generation = 0;
async function route() {
  const gen = ++generation;
  const { parts, query } = parseHash();
  const section = parts[0] || "overview";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = h("div", {});
  try {
    if (section === "incidents" && parts[1]) await incidentPage(view, parts[1]);
    else if (section === "incidents") await incidentsPage(view, query);
    else if (section === "requests") await requestPage(view, parts[1] || "");
    else await overviewPage(view);
  } catch (e) {
    view.append(errorBox(e));
  }
  if (gen !== generation) return; // a newer navigation won
  clear(main);
  main.append(view);
  main.dataset.route = location.hash; // what is shown (tests and scripts wait on it)
  document.title = (view.querySelector("h1")?.textContent || "Cairn") + " · Cairn console";
}

function errorBox(e) {
  if (e instanceof APIError && e.status === 401) {
    return h("div", { class: "notice bad", role: "alert", "data-error": "401" },
      h("strong", {}, "Not authorized. "), "The admin API refused the call (401): enter the admin token to see this page.");
  }
  return h("div", { class: "notice bad", role: "alert" }, h("strong", {}, "Could not load: "), e.message || String(e));
}

function status(el, kind, text) {
  clear(el);
  el.className = "notice " + kind;
  el.append(text);
  el.hidden = false;
}

function table(head, rows, opts = {}) {
  // On a narrow screen a "stack" table shows each row as a card, every
  // cell labelled by its column (style.css).
  if (opts.stack) {
    for (const r of rows) [...r.children].forEach((c, i) => { if (head[i]) c.dataset.label = head[i]; });
  }
  const t = h("table", { class: opts.stack ? "stack" : null },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col", class: opts.num?.includes(c) ? "num" : null }, c)))),
    h("tbody", {}, rows));
  if (opts.caption) t.prepend(h("caption", { class: "muted" }, opts.caption));
  return h("div", { class: "table-wrap" }, t);
}
function td(v, cls) { return h("td", { class: cls }, v); }
function badge(text, cls) { return h("span", { class: "badge " + (cls || text) }, text); }

// ---------- Overview ----------

async function overviewPage(view) {
  view.append(h("h1", {}, "Overview"));
  const [state, signals, list] = await Promise.all([api("/admin/state"), api("/admin/signals"), api("/admin/incidents")]);
  const active = list.filter((s) => s.status !== "resolved");
  view.append(h("p", {}, "Config revision ", h("code", {}, state.config_revision || "—"), ", release ",
    h("code", {}, state.release || "—"), ", state taken ", when(state.taken_at), ". ",
    active.length ? h("a", { href: "#/incidents?status=open" }, `${active.length} incident(s) not resolved`) : "No incident open."));
  const msg = h("div", { role: "status", hidden: true, id: "action-status" });
  view.append(msg);
  for (const rs of state.routes || []) {
    const sec = h("section", { class: "route", "aria-labelledby": "route-" + rs.name });
    sec.append(h("h2", { id: "route-" + rs.name }, "Route ", h("code", {}, rs.name)));
    sec.append(h("dl", { class: "facts" },
      h("dt", {}, "Prompt version"), h("dd", {}, h("code", {}, rs.prompt?.version || "—"),
        rs.configured_prompt ? [" (configured: ", h("code", {}, rs.configured_prompt.version || "—"), ")"] : null),
      h("dt", {}, "Contract mode"), h("dd", {}, rs.contract?.mode || "none"),
      h("dt", {}, "Sticky by"), h("dd", {}, rs.sticky || "—"),
      h("dt", {}, "Auto rollback"), h("dd", {}, rs.auto_rollback ? "yes" : "no")));
    const rolled = new Set(rs.rolled_back || []);
    sec.append(h("h3", {}, "Cohorts"));
    sec.append(table(["Cohort", "Target", "Live weight", "Configured weight", "State"],
      (rs.targets || []).map((t) => h("tr", { class: t.weight !== t.configured_weight ? "changed" : null },
        td(h("code", {}, t.cohort)), td(`${t.provider}/${t.model || "*"}`), td(String(t.weight), "num"),
        td(String(t.configured_weight), "num"),
        td(rolled.has(t.cohort) ? [h("span", { class: "diff-mark" }, "≠ "), "rolled back"] : (t.weight !== t.configured_weight ? "overridden" : "as configured")))),
      { num: ["Live weight", "Configured weight"], stack: true }));
    const ovs = rs.overrides || [];
    sec.append(h("h3", {}, "Overrides in force"));
    if (!ovs.length) sec.append(h("p", { class: "muted" }, "None: the route serves its config file."));
    else sec.append(table(["What", "Source", "Who", "When", "Why", "Incident", ""],
      ovs.map((o) => h("tr", {},
        td(o.what === "cohort" ? `cohort ${o.cohort} at weight 0` : `prompt ${o.prompt?.version || ""}`),
        td(o.source), td(o.actor || "—"), td(when(o.at)), td(o.reason || "—"),
        td(o.incident ? h("a", { href: "#/incidents/" + encodeURIComponent(o.incident) }, o.incident) : "—"),
        td(h("button", { type: "button", class: "secondary", onclick: () => restore(rs.name, o, msg) },
          o.what === "cohort" ? `Restore cohort ${o.cohort}` : "Restore configured prompt"))))));
    const sigs = signals.filter((s) => s.route === rs.name);
    sec.append(h("h3", {}, "Signals now (this replica's detection window)"));
    if (!sigs.length) sec.append(h("p", { class: "muted" }, "No signal is enabled."));
    else sec.append(table(["Cohort", "Signal", "Value", "Threshold", "Requests", "Verdict"],
      sigs.map((s) => h("tr", { class: s.verdict === "crossing" ? "changed" : null },
        td(h("code", {}, s.cohort)), td(s.signal), td(s.requests ? fmtValue(s.unit, s.value) : "—", "num"),
        td(s.threshold ? fmtValue(s.unit, s.threshold) : "—", "num"), td(String(s.requests), "num"),
        td([!s.requests ? badge("no traffic", "none") :
          badge(s.verdict === "crossing" ? "crossing ▲" : s.verdict === "unknown" ? "too few requests" : "below", s.verdict),
          s.live ? null : " (no weight)"]))),
      { num: ["Value", "Threshold", "Requests"], stack: true }));
    view.append(sec);
  }
}

async function restore(routeName, o, msg) {
  const what = o.what === "cohort" ? `cohort ${o.cohort}` : "the configured prompt";
  const reason = await confirmAction(`Restore ${what}?`,
    `Route ${routeName} goes back to its config file for ${what}. The change is written to the audit log.`, "Restore");
  if (reason === null) return;
  try {
    await api(`/admin/routes/${encodeURIComponent(routeName)}/restore`, { method: "POST",
      body: { what: o.what, cohort: o.cohort || "", reason, actor: "console" } });
    status(msg, "ok", `Restored ${what} on route ${routeName}; see the audit log.`);
  } catch (e) {
    status(msg, "bad", `Restore refused: ${e.message}`);
    return;
  }
  await refreshKeepingStatus(msg);
}

// ---------- Incidents ----------

async function incidentsPage(view, query) {
  view.append(h("h1", {}, "Incidents"));
  const list = await api("/admin/incidents");
  const st = query.get("status") || "", rt = query.get("route") || "";
  const routes = [...new Set(list.map((s) => s.route))].sort();
  const statusSel = h("select", { id: "filter-status" },
    ["", "open", "mitigated", "resolved"].map((v) => h("option", { value: v, selected: v === st }, v || "any status")));
  const routeSel = h("select", { id: "filter-route" },
    ["", ...routes].map((v) => h("option", { value: v, selected: v === rt }, v || "any route")));
  const apply = () => {
    const q = new URLSearchParams();
    if (statusSel.value) q.set("status", statusSel.value);
    if (routeSel.value) q.set("route", routeSel.value);
    location.hash = "#/incidents" + (q.toString() ? "?" + q : "");
  };
  statusSel.addEventListener("change", apply);
  routeSel.addEventListener("change", apply);
  view.append(h("div", { class: "filters", role: "search" },
    h("div", {}, h("label", { for: "filter-status" }, "Status"), statusSel),
    h("div", {}, h("label", { for: "filter-route" }, "Route"), routeSel)));
  const shown = list.filter((s) => (!st || s.status === st) && (!rt || s.route === rt));
  if (!shown.length) {
    view.append(h("p", { class: "muted" }, list.length ? "No incident matches the filters." : "No incident yet."));
    return;
  }
  view.append(table(["Incident", "Status", "Severity", "Route", "Cohort", "Signal", "First failure", "Detected", "Mitigated", "Resolved", "Failed", "Cost"],
    shown.map((s) => h("tr", { "data-incident": s.id },
      td([h("a", { href: "#/incidents/" + encodeURIComponent(s.id) }, s.id), h("div", { class: "muted" }, s.symptom)]),
      td(badge(s.status)), td([badge(s.severity || "page"), s.class ? [" ", badge(s.class, "security")] : null]),
      td(h("code", {}, s.route)), td(s.cohort ? h("code", {}, s.cohort) : "—"), td(s.signal),
      td(when(s.first_failure_at)), td(when(s.detected_at)), td(when(s.mitigated_at)),
      td(s.resolved_at ? [when(s.resolved_at), s.resolution ? h("div", { class: "muted" }, s.resolution) : null] : when(null)),
      td(String(s.failed ?? "—"), "num"), td(usd(s.failed_cost_usd), "num"))),
    { num: ["Failed", "Cost"], stack: true }));
}

// ---------- Incident ----------

async function incidentPage(view, id) {
  const path = "/admin/incidents/" + encodeURIComponent(id);
  const [inc, state, pm, svg] = await Promise.all([api(path), api("/admin/state"),
    api(path + "/postmortem", { text: true }), api(path + "/chart.svg", { text: true })]);
  const tr = inc.trigger;
  view.append(h("p", {}, h("a", { href: "#/incidents" }, "← Incidents")));
  view.append(h("h1", {}, inc.symptom || inc.id));
  view.append(h("p", {}, badge(inc.status), " ", badge(inc.severity || "page"), inc.class ? [" ", badge(inc.class, "security")] : null,
    " ", h("code", {}, inc.id)));
  view.append(h("dl", { class: "facts" },
    h("dt", {}, "Route / cohort / target"), h("dd", {}, h("code", {}, tr.route), " / ", h("code", {}, tr.cohort || "whole route"), " / ", tr.target || "—"),
    h("dt", {}, "Signal"), h("dd", {}, `${tr.signal}: ${fmtValue(tr.unit, tr.observed)} against a threshold of ${fmtValue(tr.unit, tr.threshold)} (${tr.failed} of ${tr.requests} requests in the window)`),
    h("dt", {}, "Likely layer"), h("dd", {}, inc.layer || "—", inc.layer_reason ? ` (${inc.layer_reason})` : ""),
    h("dt", {}, "First failure"), h("dd", {}, when(inc.first_failure_at)),
    h("dt", {}, "Detected"), h("dd", {}, when(inc.detected_at), ` (${fmtDur(Date.parse(inc.detected_at) - Date.parse(inc.first_failure_at))} after)`),
    h("dt", {}, "Mitigated"), h("dd", {}, when(inc.mitigated_at)),
    h("dt", {}, "Resolved"), h("dd", {}, when(inc.resolved_at), inc.resolution ? ` (${inc.resolution})` : "")));

  // Actions.
  const msg = h("div", { role: "status", hidden: true, id: "action-status" });
  const live = (state.routes || []).find((r) => r.name === tr.route);
  const cohort = tr.cohort;
  const acts = h("div", { class: "actions", role: "group", "aria-label": "Actions" });
  if (cohort && live) {
    const rolled = (live.rolled_back || []).includes(cohort);
    acts.append(h("button", { type: "button", class: "danger", id: "btn-rollback", disabled: rolled,
      onclick: () => rollback(tr.route, cohort, inc.id, msg) }, rolled ? `Cohort ${cohort} is rolled back` : `Roll back cohort ${cohort}`));
    acts.append(h("button", { type: "button", class: "secondary", id: "btn-restore", disabled: !rolled,
      onclick: () => restore(tr.route, { what: "cohort", cohort }, msg) }, `Restore cohort ${cohort}`));
  }
  acts.append(h("button", { type: "button", class: "secondary", id: "btn-resolve", disabled: inc.status === "resolved",
    onclick: () => resolveIncident(inc.id, msg) }, inc.status === "resolved" ? "Resolved" : "Resolve incident"));
  view.append(acts, msg);

  // Chart.
  view.append(h("h2", {}, "Timeline chart"));
  view.append(chartFigure(svg, inc));

  // Frozen state beside today's.
  view.append(h("h2", {}, "State at detection and now"));
  view.append(stateCompare(inc, live));

  // Changes.
  view.append(h("h2", {}, `Changes in the lookback before the first failure (${(inc.changes || []).length})`));
  view.append(changesList(inc));

  // Samples.
  view.append(h("h2", {}, "Samples"));
  const cols = h("div", { class: "columns" });
  for (const [name, recs] of [["Before", inc.samples.before || []], ["During", inc.samples.during || []], ["After", inc.samples.after || []]]) {
    const sec = h("section", { "aria-label": name + " samples", "data-phase": name.toLowerCase() },
      h("h3", {}, `${name} (${recs.length})`));
    if (!recs.length) sec.append(h("p", { class: "muted" }, "none"));
    // An incident may hold thousands of samples: the first ones render
    // at once, the rest on request, so the page stays fast.
    sec.append(...recs.slice(0, SAMPLES_SHOWN).map((r) => sampleCard(r)));
    if (recs.length > SAMPLES_SHOWN) {
      const more = h("button", { type: "button", class: "secondary", onclick: () => {
        more.replaceWith(...recs.slice(SAMPLES_SHOWN).map((r) => sampleCard(r)));
      } }, `Show all ${recs.length} ${name.toLowerCase()} samples`);
      sec.append(more);
    }
    cols.append(sec);
  }
  view.append(cols);
  view.append(h("p", { class: "muted" }, "All samples as JSONL: ", h("code", {}, `cairn incidents samples ${inc.id}`)));

  // Scope and cost.
  view.append(h("h2", {}, "Scope and cost"));
  view.append(scopeView(inc));

  // Timeline events.
  view.append(h("h2", {}, "Timeline (UTC)"));
  view.append(table(["Time", "Event", "Details"], (inc.timeline || []).map((e) =>
    h("tr", {}, td(when(e.at)), td(e.kind), td(e.message + (e.replica ? ` [${e.replica}]` : ""))))));

  // Postmortem.
  view.append(h("h2", {}, "Postmortem draft"));
  const copyMsg = h("span", { role: "status", class: "muted" });
  view.append(h("div", { class: "actions" },
    h("button", { type: "button", class: "secondary", id: "btn-copy", onclick: () => copyMarkdown(pm, copyMsg) }, "Copy as Markdown"),
    h("a", { href: path + "/chart.svg", download: inc.id + ".svg", id: "chart-link", hidden: true }, "chart"), copyMsg));
  const pmBox = h("article", { class: "postmortem", "aria-label": "Postmortem draft" });
  renderMarkdown(pmBox, pm, h);
  view.append(pmBox);
}

function chartFigure(svgText, inc) {
  const fig = h("figure", { class: "chart", id: "chart" });
  const doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
  const root = doc.documentElement;
  if (root && root.nodeName === "svg") {
    for (const s of root.querySelectorAll("script, foreignObject")) s.remove(); // drawn by Go; belt and braces
    root.removeAttribute("width");
    root.removeAttribute("height");
    fig.append(document.importNode(root, true));
  } else {
    fig.append(h("p", { class: "notice bad" }, "The chart could not be read."));
  }
  fig.append(h("figcaption", {}, `Per cohort of route ${inc.trigger.route}: the ${inc.trigger.signal} signal per bucket, its threshold (dotted), and markers for each change, the first failure, the detection, each rollback and the resolution. `,
    "The same chart is in the postmortem: ", h("code", {}, `cairn incidents postmortem ${inc.id} --out DIR`), "."));
  return fig;
}

function stateCompare(inc, live) {
  const tr = inc.trigger;
  const frozen = (inc.state.routes || []).find((r) => r.name === tr.route);
  if (!frozen) return h("p", { class: "muted" }, "The frozen state has no route " + tr.route + ".");
  const wrap = h("div", {});
  const nowT = new Map((live?.targets || []).map((t) => [t.cohort + "|" + t.provider + "/" + t.model, t]));
  const rows = (frozen.targets || []).map((t) => {
    const n = nowT.get(t.cohort + "|" + t.provider + "/" + t.model);
    const changed = !n || n.weight !== t.weight;
    return h("tr", { class: changed ? "changed" : null },
      td(h("code", {}, t.cohort)), td(`${t.provider}/${t.model || "*"}`), td(String(t.weight), "num"),
      td(n ? String(n.weight) : "gone", "num"), td(String(t.configured_weight), "num"),
      td(changed ? [h("span", { class: "diff-mark" }, "≠ "), "changed since detection"] : "same"));
  });
  wrap.append(table(["Cohort", "Target", "Weight at detection", "Weight now", "Configured", "Difference"], rows,
    { num: ["Weight at detection", "Weight now", "Configured"] }));
  const facts = [
    ["Prompt version", frozen.prompt?.version, live?.prompt?.version],
    ["Contract mode", frozen.contract?.mode, live?.contract?.mode],
    ["Flags", JSON.stringify(frozen.flags || {}), JSON.stringify(live?.flags || {})],
    ["Config revision", inc.state.config_revision, undefined],
    ["Release", inc.state.release, undefined],
  ];
  wrap.append(table(["", "At detection", "Now", "Difference"], facts.map(([k, a, b]) =>
    h("tr", { class: b !== undefined && a !== b ? "changed" : null }, h("th", { scope: "row" }, k), td(h("code", {}, a || "—")),
      td(b === undefined ? h("span", { class: "muted" }, "see overview") : h("code", {}, b || "—")),
      td(b !== undefined && a !== b ? [h("span", { class: "diff-mark" }, "≠ "), "changed"] : "—")))));
  wrap.append(h("p", { class: "muted" }, "Frozen hash ", h("code", {}, inc.frozen_hash), ": state, trigger and changes as they were at detection."));
  return wrap;
}

function changesList(inc) {
  const ch = inc.changes || [];
  if (!ch.length) return h("p", { class: "muted" }, "No change to the route or the gateway was recorded in the lookback.");
  return h("div", {}, ch.map((e) => h("div", { class: "card" },
    h("h4", {}, when(e.at), " · ", e.source, e.actor ? " by " + e.actor : "",
      " · ", fmtDur(Date.parse(inc.first_failure_at) - Date.parse(e.at)), " before the first failure"),
    e.reason ? h("p", {}, e.reason) : null,
    (e.changes || []).length ? table(["Path", "From", "To"], e.changes.map((c) => h("tr", {},
      td(h("code", {}, c.path)), td(h("code", {}, fmtAny(c.from))), td(h("code", {}, fmtAny(c.to)))))) : null,
    (e.changes || []).filter((c) => c.diff).map((c) => [h("p", {}, "Prompt diff of ", h("code", {}, c.path), ":"),
      h("pre", { class: "diff" }, c.diff)]))));
}

function fmtAny(v) {
  if (v === undefined || v === null) return "—";
  return typeof v === "string" ? v : JSON.stringify(v);
}

function sampleCard(r) {
  const fail = r.contract?.verdict === "fail" || r.outcome !== "ok";
  return h("article", { class: "card " + (fail ? "fail" : "pass"), "data-request": r.gateway_request_id },
    h("h4", {}, h("a", { href: "#/requests/" + encodeURIComponent(r.gateway_request_id), class: "mono" }, r.gateway_request_id)),
    h("dl", { class: "facts" },
      h("dt", {}, "Provider ID"), h("dd", { class: "mono" }, r.provider_request_id || "—"),
      h("dt", {}, "Received"), h("dd", {}, when(r.received_at)),
      h("dt", {}, "Cohort / target"), h("dd", {}, `${r.cohort || "—"} / ${r.provider || "—"}/${r.model || "—"}`),
      h("dt", {}, "Outcome"), h("dd", {}, `${r.outcome}, status ${r.status}, ${Math.round(r.latency_ms || 0)} ms`),
      h("dt", {}, "Contract"), h("dd", {}, r.contract?.verdict || "none",
        (r.contract?.reasons || []).length ? h("ul", { class: "reasons" }, r.contract.reasons.map((x) => h("li", {}, x))) : null)),
    bodies(r));
}

function pretty(raw) {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === "string") {
    try { return JSON.stringify(JSON.parse(raw), null, 2); } catch { return raw; }
  }
  return JSON.stringify(raw, null, 2);
}

function bodies(r) {
  if (!r.body_sampled && r.request === undefined && r.response === undefined) return h("p", { class: "muted" }, "Bodies not sampled.");
  return h("details", {}, h("summary", {}, "Masked request and response"),
    h("h4", {}, "Request"), h("pre", {}, pretty(r.request) || "—"),
    h("h4", {}, "Response"), h("pre", {}, pretty(r.response) || "—"));
}

function scopeView(inc) {
  const s = inc.scope, c = inc.cost;
  const wrap = h("div", {});
  wrap.append(h("dl", { class: "facts" },
    h("dt", {}, "Requests on the route"), h("dd", {}, `${s.requests}, of which ${s.failed} failed (${pct(s.requests ? s.failed / s.requests : 0)})`),
    h("dt", {}, "End users affected"), h("dd", {}, `${s.users_at_most ? "at most " : ""}${s.users} (${s.failed_without_user} failed requests named no user)`),
    h("dt", {}, "Tokens on failed requests"), h("dd", {}, `${c.failed_tokens} (${c.failed_prompt_tokens} prompt, ${c.failed_completion_tokens} completion) of ${c.total_tokens} on the route`),
    h("dt", {}, "Cost"), h("dd", {}, `${usd(c.failed_cost_usd)} on failed requests, of ${usd(c.total_cost_usd)} on the route`)));
  const two = h("div", { class: "two" });
  for (const [name, m] of [["key", s.by_key], ["target", s.by_target], ["client", s.by_client]]) {
    const ks = Object.keys(m || {}).sort((a, b) => m[b] - m[a] || a.localeCompare(b));
    if (!ks.length) continue;
    two.append(h("section", {}, table([`Failed by ${name}`, "Failed"], ks.map((k) => h("tr", {}, td(k), td(String(m[k]), "num"))), { num: ["Failed"] })));
  }
  wrap.append(two);
  return wrap;
}

async function rollback(routeName, cohort, incID, msg) {
  const reason = await confirmAction(`Roll back cohort ${cohort}?`,
    `Cohort ${cohort} of route ${routeName} goes to weight 0 on every replica, as an override naming incident ${incID}. The change is written to the audit log.`,
    "Roll back");
  if (reason === null) return;
  try {
    await api(`/admin/routes/${encodeURIComponent(routeName)}/rollback`, { method: "POST",
      body: { cohort, reason, actor: "console", incident: incID } });
    status(msg, "ok", `Rolled back cohort ${cohort} on route ${routeName}; see the audit log.`);
  } catch (e) {
    status(msg, "bad", `Rollback refused: ${e.message}`);
    return;
  }
  await refreshKeepingStatus(msg);
}

async function resolveIncident(id, msg) {
  const reason = await confirmAction(`Resolve incident ${id}?`,
    "The incident is marked resolved by hand and Cairn stops following it. The resolution is written to the audit log.", "Resolve");
  if (reason === null) return;
  try {
    await api(`/admin/incidents/${encodeURIComponent(id)}/resolve`, { method: "POST", body: { reason, actor: "console" } });
    status(msg, "ok", `Incident ${id} resolved; see the audit log.`);
  } catch (e) {
    status(msg, "bad", `Resolve refused: ${e.message}`);
    return;
  }
  await refreshKeepingStatus(msg);
}

// refreshKeepingStatus reloads the page's data and shows msg's text again.
async function refreshKeepingStatus(msg) {
  const text = msg.textContent, cls = msg.className;
  await route();
  const again = document.getElementById("action-status");
  if (again) { again.className = cls; again.textContent = text; again.hidden = false; }
}

async function copyMarkdown(md, out) {
  try {
    await navigator.clipboard.writeText(md);
    out.textContent = "Copied the postmortem as Markdown.";
  } catch {
    // No clipboard permission (an insecure origin, a headless browser): select it instead.
    const ta = h("textarea", { rows: 8, "aria-label": "Postmortem Markdown", readonly: true });
    ta.value = md;
    out.replaceChildren("The clipboard is not available here; the Markdown is selected below: press Ctrl+C.", ta);
    ta.focus();
    ta.select();
  }
}

// ---------- Request ----------

async function requestPage(view, id) {
  view.append(h("h1", {}, id ? "Request " + id : "Find a request"));
  const input = h("input", { id: "lookup-id", name: "id", value: id, placeholder: "req_…, a provider ID or your own ID", spellcheck: "false", autocomplete: "off" });
  view.append(h("form", { class: "lookup", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (v) location.hash = "#/requests/" + encodeURIComponent(v);
  } }, h("div", {}, h("label", { for: "lookup-id" }, "Gateway, provider or client request ID"), input),
  h("button", { type: "submit" }, "Look up")));
  if (!id) return;
  let body;
  try {
    body = await api("/admin/requests/" + encodeURIComponent(id));
  } catch (e) {
    if (e.status === 404) { view.append(h("p", { class: "notice" }, "No record carries that ID (gateway, provider or client).")); return; }
    throw e;
  }
  const recs = body.object === "list" ? body.data : [body];
  if (body.object === "list") view.append(h("p", {}, `${recs.length} records carry this client request ID, newest first.`));
  for (const r of recs) view.append(recordView(r, body.scores));
}

function recordView(r, scores) {
  const sec = h("section", { class: "record", "data-request": r.gateway_request_id });
  sec.append(h("h2", {}, "Record ", h("code", {}, r.gateway_request_id)));
  sec.append(h("dl", { class: "facts" },
    h("dt", {}, "Gateway request ID"), h("dd", { class: "mono", id: "rec-gateway-id" }, r.gateway_request_id),
    h("dt", {}, "Provider request ID"), h("dd", { class: "mono" }, r.provider_request_id || "—"),
    h("dt", {}, "Client request ID"), h("dd", { class: "mono" }, r.client_request_id || "—"),
    h("dt", {}, "Trace ID"), h("dd", { class: "mono" }, r.trace_id || "—"),
    h("dt", {}, "Received"), h("dd", {}, when(r.received_at)),
    h("dt", {}, "Route / cohort / target"), h("dd", {}, `${r.route || "—"} / ${r.cohort || "—"} / ${r.target || (r.provider ? r.provider + "/" + r.model : "—")}`),
    h("dt", {}, "Key / client"), h("dd", {}, `${r.key || "—"} / ${r.client || "—"}`),
    h("dt", {}, "Prompt / release"), h("dd", {}, `${r.prompt_version || "—"} / ${r.release || "—"}`),
    h("dt", {}, "Outcome"), h("dd", {}, `${r.outcome}, status ${r.status}, ${Math.round(r.latency_ms || 0)} ms`, r.error ? ` — ${r.error}` : ""),
    h("dt", {}, "Tokens / cost"), h("dd", {}, `${r.usage?.prompt_tokens ?? 0} prompt, ${r.usage?.completion_tokens ?? 0} completion; ${usd(r.cost_usd)}`),
    h("dt", {}, "Contract"), h("dd", {}, badge(r.contract?.verdict || "none", r.contract?.verdict === "fail" ? "open" : "below"),
      (r.contract?.reasons || []).length ? h("ul", { class: "reasons" }, r.contract.reasons.map((x) => h("li", {}, x))) : null),
    r.refusal || (r.pii_leak || []).length ? [h("dt", {}, "Guardrails"),
      h("dd", {}, [r.refusal ? "refusal" : null, (r.pii_leak || []).length ? "PII in the answer: " + r.pii_leak.join(", ") : null].filter(Boolean).join("; "))] : null));
  sec.append(h("h3", {}, "Attempts"));
  const at = r.attempts || [];
  if (!at.length) sec.append(h("p", { class: "muted" }, "No upstream attempt."));
  else sec.append(table(["#", "Target", "Cohort", "Status", "Latency", "Provider ID", "Contract", "Error"],
    at.map((a, i) => h("tr", {}, td(String(i + 1), "num"), td(a.target || `${a.provider}/${a.model}`), td(a.cohort || "—"),
      td(String(a.status), "num"), td(Math.round(a.latency_ms || 0) + " ms", "num"), td(h("code", {}, a.provider_request_id || "—")),
      td(a.contract || "—"), td(a.error || "—"))), { num: ["#", "Status", "Latency"], stack: true }));
  const sc = scores || r.scores || [];
  sec.append(h("h3", {}, "Scores"));
  if (!sc.length) sec.append(h("p", { class: "muted" }, "No eval score was posted for this request."));
  else sec.append(table(["Name", "Value", "Source", "At"], sc.map((s) => h("tr", {}, td(s.name), td(fmtValue("score", s.value), "num"), td(s.source || "—"), td(when(s.at))))));
  sec.append(h("h3", {}, "Masked bodies"));
  if (!r.body_sampled && r.request === undefined) sec.append(h("p", { class: "muted" }, "Bodies not sampled."));
  else sec.append(h("div", { class: "two" }, h("section", {}, h("h4", {}, "Request"), h("pre", {}, pretty(r.request) || "—")),
    h("section", {}, h("h4", {}, "Response"), h("pre", {}, pretty(r.response) || "—"))));
  return sec;
}

window.addEventListener("hashchange", () => { route().then(() => main.focus({ preventScroll: false })); });
if (!location.hash) history.replaceState(null, "", "#/overview");
route();
