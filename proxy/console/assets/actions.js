// The actions that change the gateway's state (restore, rollback,
// resolve), each confirmed with a reason that goes to the audit log, and
// the reload that keeps the result's message on the refreshed page.
import { api } from "./api.js";
import { confirmAction } from "./confirm.js";
import { status } from "./render.js";

// reload re-renders the current page; the router sets it (setReload).
let reload = async () => {};
export function setReload(fn) { reload = fn; }

export async function restore(routeName, o, msg) {
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

export async function rollback(routeName, cohort, incID, msg) {
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

export async function resolveIncident(id, msg) {
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
  await reload();
  const again = document.getElementById("action-status");
  if (again) { again.className = cls; again.textContent = text; again.hidden = false; }
}
