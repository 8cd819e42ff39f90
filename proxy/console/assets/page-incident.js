// Incident page (#/incidents/ID): facts, actions, chart, the frozen state
// beside today's, changes, samples, scope and cost, timeline and the
// postmortem draft.
import { api } from "./api.js";
import { restore, rollback, resolveIncident } from "./actions.js";
import { renderMarkdown } from "./markdown.js";
import { h, when, table, td, badge, pct, usd, fmtValue, fmtDur, fmtAny, pretty } from "./render.js";

const SAMPLES_SHOWN = 10; // per phase, before "Show all"

export async function incidentPage(view, id) {
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
