// The compare view: the same seed (and class) through every generating model, side by side, each
// labelled with its family and its measured FID, so that people can see the families differ.

import { post } from "./api.js";
import { MODE_INFO, modesFor } from "./cards.js";
import { h } from "./dom.js";
import { imagesOf, scaleFor } from "./results.js";

const fmt = (x) => Number(x.toPrecision(3)).toLocaleString("en");

/** "FID 10.5 (3.5x the floor)" from a card's metrics, or "FID not measured". */
export function fidLabel(card) {
  const m = card.metrics;
  if (!m || typeof m.fid !== "number") return "FID not measured";
  const floor = typeof m.fid_floor === "number" && m.fid_floor > 0 ? ` (${fmt(m.fid / m.fid_floor)}x the floor)` : "";
  return `FID ${fmt(m.fid)}${floor}`;
}

/** The models this page can compare: those that generate from a seed on this service, best FID first. */
export function comparable(models, spec) {
  const fid = (e) => (typeof e.card.metrics?.fid === "number" ? e.card.metrics.fid : Infinity);
  return models.filter((e) => modesFor(e.card, spec).includes("generate")).sort((a, b) => fid(a) - fid(b) || a.name.localeCompare(b.name));
}

/** The request that draws image 0 of `seed` from one model (its class only when it takes one). */
export function compareBody(entry, seed, cls) {
  const body = { model: entry.name, count: 1, seed };
  if (entry.card.conditional && cls !== "") body.labels = Number(cls);
  return body;
}

export class Compare {
  constructor({ form, seed, cls, status, grid }) {
    Object.assign(this, { form, seed, cls, status, grid });
    this.entries = [];
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.run();
    });
  }

  /** New model list: the class choices are the conditional models' class names. */
  load(models, spec) {
    this.entries = comparable(models, spec);
    const names = this.entries.find((e) => e.card.conditional)?.card.class_names || [];
    this.cls.replaceChildren(h("option", { value: "", text: "any (each model's own draw)" }),
      ...names.map((n, k) => h("option", { value: String(k), text: n })));
    this.form.hidden = this.entries.length < 2;
    this.status.textContent = this.entries.length < 2
      ? "Comparing needs two or more models that generate from a seed."
      : `${this.entries.length} models; the same seed through each.`;
    this.grid.replaceChildren();
  }

  async run() {
    const seed = Number(this.seed.value);
    if (!Number.isInteger(seed) || seed < 0) {
      this.status.textContent = "seed: must be a whole number >= 0";
      this.seed.setAttribute("aria-invalid", "true");
      return;
    }
    this.seed.removeAttribute("aria-invalid");
    this.status.textContent = `Generating seed ${seed} with ${this.entries.length} models…`;
    const cells = await Promise.all(this.entries.map((e) => this.cell(e, seed, this.cls.value)));
    this.grid.replaceChildren(...cells);
    this.status.textContent = `Seed ${seed}${this.cls.value !== "" ? `, class ${this.cls.selectedOptions[0].text}` : ""}: ${cells.length} models.`;
  }

  async cell(entry, seed, cls) {
    const c = entry.card;
    const label = [h("strong", { text: entry.name }), h("span", { text: `${c.arch} / ${c.variant}` }), h("span", { class: "fid", text: fidLabel(c) })];
    try {
      const [im] = await imagesOf(await post(MODE_INFO.generate.path, compareBody(entry, seed, cls)));
      const img = h("img", { src: im.src, alt: `${entry.name}, seed ${seed}` });
      img.style.width = `${c.image_shape[2] * scaleFor(c)}px`;
      return h("figure", { role: "listitem", "data-model": entry.name }, img, h("figcaption", {}, ...label));
    } catch (e) {
      return h("figure", { role: "listitem", "data-model": entry.name, class: "failed" },
        h("p", { class: "error", text: e.message }), h("figcaption", {}, ...label));
    }
  }
}
