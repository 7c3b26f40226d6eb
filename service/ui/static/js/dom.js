// Small DOM helpers: elements, and one labelled form field with a hint and an error line.

let uid = 0;
export const nextId = (stem) => `${stem.replace(/[^\w-]/g, "_")}-${++uid}`;

/** h("input", {type: "text", id: "x"}, child...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/**
 * A field: <div class=field data-api=...> label, controls, hint, error </div>.
 * api: the request fields whose errors belong here; modes: where it is shown.
 * controls: elements; the first one with an id gets the label and the aria links.
 */
export function field({ label, hint, api, modes, controls, name }) {
  const error = h("p", { class: "error", id: nextId(`${name}-error`), "aria-live": "polite" });
  const hintEl = hint ? h("p", { class: "hint", id: nextId(`${name}-hint`), text: hint }) : null;
  const main = controls.find((c) => c.id) || controls[0];
  const wrap = h(
    "div",
    { class: "field", "data-api": api.join(" "), "data-name": name },
    h("label", { for: main.id, text: label }),
    h("div", { class: "control" }, controls),
    hintEl,
    error,
  );
  for (const c of wrap.querySelectorAll("input, select, textarea")) {
    const ids = [hintEl && hintEl.id, error.id].filter(Boolean).join(" ");
    c.setAttribute("aria-describedby", ids);
  }
  return { name, api, modes, wrap, error, main };
}

export function fieldset(legend, ...children) {
  return h("fieldset", {}, h("legend", { text: legend }), ...children);
}
