// The confirmation before a drain or an unregister: a modal <dialog> (Escape
// cancels, Enter confirms: the confirm button has the focus), which shows the
// registry's answer if it refuses.

import { useEffect, useRef, useState } from "preact/hooks";
import { address } from "./format.js";
import { html } from "./html.js";

const TEXT = {
  drain: {
    title: "Drain this instance?",
    body: "It stops getting new traffic (left out of GetByType, resolvers and xDS), stays probed, and is removed when it unregisters or at the drain deadline.",
    confirm: "Drain",
  },
  unregister: {
    title: "Unregister this instance?",
    body: "It is removed at once; watchers see it go, and its token stops working. A process that registers itself will register again.",
    confirm: "Unregister",
  },
};

/**
 * @param {{action?: {kind: "drain" | "unregister", instance}, run: (action) => Promise<void>, onClose: () => void}} props
 */
export function ConfirmDialog({ action, run, onClose }) {
  const dialog = useRef(null);
  const confirm = useRef(null);
  const [state, setState] = useState({ pending: false, error: undefined });
  useEffect(() => {
    const el = dialog.current;
    if (action && !el.open) {
      setState({ pending: false, error: undefined });
      el.showModal();
      confirm.current?.focus();
    } else if (!action && el.open) el.close();
  }, [action]);
  const text = action ? TEXT[action.kind] : undefined;
  const submit = async (e) => {
    e.preventDefault();
    if (state.pending) return;
    setState({ pending: true, error: undefined });
    try {
      await run(action);
      onClose();
    } catch (err) {
      setState({ pending: false, error: err.code ? `${err.code}: ${err.message}` : err.message });
    }
  };
  return html`<dialog ref=${dialog} class="confirm" aria-labelledby="confirm-title"
      onCancel=${(e) => {
        e.preventDefault();
        onClose();
      }}>
    ${action
      ? html`<form onSubmit=${submit}>
          <h2 id="confirm-title">${text.title}</h2>
          <p><strong class="mono">${address(action.instance)}</strong> of <strong>${action.instance.serviceType}</strong>
            <br /><span class="muted small mono">${action.instance.id}</span></p>
          <p>${text.body}</p>
          ${state.error ? html`<p class="error" role="alert">The registry refused: ${state.error}</p>` : null}
          <div class="buttons">
            <button type="button" onClick=${onClose}>Cancel</button>
            <button type="submit" ref=${confirm} class="danger" disabled=${state.pending}>${state.pending ? "Working…" : text.confirm}</button>
          </div>
        </form>`
      : null}
  </dialog>`;
}
