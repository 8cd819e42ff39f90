// Overview page (#/overview): each route's cohorts, overrides in force and
// signals now.
import { api } from "./api.js";
import { restore } from "./actions.js";
import { h, when, table, td, badge, fmtValue } from "./render.js";

export async function overviewPage(view) {
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
