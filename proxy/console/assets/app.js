// Cairn console (issue 18). Plain ES modules, no build step, no dependency.
// Every byte of data comes from this origin's admin API (api.js). This is
// the entry module: the hash router that draws one page at a time.
import { APIError, initTokenDialog } from "./api.js";
import { setReload } from "./actions.js";
import { overviewPage } from "./page-overview.js";
import { incidentsPage } from "./page-incidents.js";
import { incidentPage } from "./page-incident.js";
import { requestPage } from "./page-request.js";
import { h, clear } from "./render.js";

const main = document.getElementById("main");

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

initTokenDialog(route);
setReload(route);
window.addEventListener("hashchange", () => { route().then(() => main.focus({ preventScroll: false })); });
if (!location.hash) history.replaceState(null, "", "#/overview");
route();
