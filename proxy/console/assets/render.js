// Shared rendering for every console page: DOM built from text only
// (nothing from the API becomes HTML), tables, badges, and figures rounded
// one way everywhere (as the postmortem does).

// ---------- small DOM helpers (text only: nothing from the API becomes HTML) ----------

export function h(tag, attrs, ...children) {
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

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

// ---------- figures: rounded one way everywhere (as the postmortem does) ----------

export function pct(x) {
  if (x === null || x === undefined || !isFinite(x)) return "—";
  return String(Math.round(x * 1000) / 10) + "%";
}
export function usd(v) {
  if (v === null || v === undefined || !isFinite(v)) return "—";
  if (v === 0) return "$0";
  const a = Math.abs(v);
  if (a >= 1) return "$" + v.toFixed(2);
  const dec = Math.min(8, 2 - Math.floor(Math.log10(a)));
  return "$" + Number(v.toFixed(dec)).toString();
}
export function fmtValue(unit, v) {
  if (v === null || v === undefined || !isFinite(v)) return "—";
  switch (unit) {
    case "ms": return Math.round(v) + " ms";
    case "tokens": return String(Math.round(v));
    case "usd": return usd(v);
    case "score": return String(Number(v.toPrecision(4)));
  }
  return pct(v);
}
export function fmtDur(ms) {
  if (!(ms > 0)) return "0s";
  if (ms < 1000) return Math.round(ms) + "ms";
  const s = ms / 1000;
  if (s < 60) return (Math.round(s * 10) / 10) + "s";
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  if (m < 60) return r ? `${m}m${r}s` : `${m}m`;
  const hh = Math.floor(m / 60), mm = m % 60;
  return mm ? `${hh}h${mm}m` : `${hh}h`;
}
export function isZeroTime(t) { return !t || t.startsWith("0001-01-01"); }
export function when(t) {
  if (isZeroTime(t)) return h("span", { class: "muted" }, "—");
  const d = new Date(t);
  const text = d.toISOString().replace("T", " ").replace("Z", "") + " UTC";
  return h("time", { datetime: d.toISOString() }, text);
}

// ---------- tables, badges, notices ----------

export function status(el, kind, text) {
  clear(el);
  el.className = "notice " + kind;
  el.append(text);
  el.hidden = false;
}

export function table(head, rows, opts = {}) {
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
export function td(v, cls) { return h("td", { class: cls }, v); }
export function badge(text, cls) { return h("span", { class: "badge " + (cls || text) }, text); }

// ---------- values from records ----------

export function fmtAny(v) {
  if (v === undefined || v === null) return "—";
  return typeof v === "string" ? v : JSON.stringify(v);
}

export function pretty(raw) {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === "string") {
    try { return JSON.stringify(JSON.parse(raw), null, 2); } catch { return raw; }
  }
  return JSON.stringify(raw, null, 2);
}
