// Request page (#/requests/ID): look a record up by gateway, provider or
// client request ID and show it whole.
import { api } from "./api.js";
import { h, when, table, td, badge, usd, fmtValue, pretty } from "./render.js";

export async function requestPage(view, id) {
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
