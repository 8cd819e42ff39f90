// The confirmation dialog every state-changing action goes through.

const confirmDialog = document.getElementById("confirm-dialog");
let confirmResolve = null;
// confirmAction shows a real <dialog> and resolves to the typed reason, or
// null when cancelled (button, Escape).
export function confirmAction(title, text, okLabel) {
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
