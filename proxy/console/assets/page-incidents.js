// Incidents list (#/incidents?status=&route=), filtered in the page.
import { api } from "./api.js";
import { h, when, table, td, badge, usd } from "./render.js";

export async function incidentsPage(view, query) {
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
