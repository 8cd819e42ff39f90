// The admin API client. The admin token is kept in sessionStorage and sent
// only as a bearer header; a 401 raises the banner and the token dialog
// lets the user enter it.
import { h, clear } from "./render.js";

const TOKEN_KEY = "cairn.adminToken";
const banner = document.getElementById("auth-banner");

// ---------- the admin API ----------

export class APIError extends Error {
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

export async function api(path, { method = "GET", body, text = false } = {}) {
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

// ---------- token dialog ----------

const tokenDialog = document.getElementById("token-dialog");
const tokenInput = document.getElementById("token-input");
function openTokenDialog() {
  tokenInput.value = "";
  tokenDialog.showModal();
  tokenInput.focus();
}
// initTokenDialog wires the dialog's buttons; reload redraws the page
// with the new token (or none).
export function initTokenDialog(reload) {
  document.getElementById("token-button").addEventListener("click", openTokenDialog);
  document.getElementById("token-cancel").addEventListener("click", () => tokenDialog.close());
  document.getElementById("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    tokenDialog.close();
    reload();
  });
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = tokenInput.value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    tokenInput.value = "";
    tokenDialog.close();
    reload();
  });
}
