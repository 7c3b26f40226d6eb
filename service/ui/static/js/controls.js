// The form of one model, built from its card's inputs and the endpoints' request schemas:
// which fields exist, where each is shown, the request body of a mode, and API errors placed
// next to the field they name. Nothing here depends on a model's name.

import { CODE_KINDS, IMAGE_MODES, MODE_INFO, inputsOf, mixingInput } from "./cards.js";
import { field, fieldset, h, nextId } from "./dom.js";
import { RepairInput } from "./repair.js";

// request fields with their own controls; any other primitive field of an endpoint's schema
// (e.g. a future noise_mode or a translation direction) gets a generic control
const KNOWN = new Set([
  "model", "format", "count", "seed", "seeds", "start_index", "indices", "labels", "label",
  "truncation", "codes", "steps", "method", "code", "latents", "image", "images", "masks",
]);
const DEFAULT_STEPS = 12;

/** "" -> undefined, integers -> BigInt (exact), other numbers -> Number, anything else as typed. */
export function numberValue(text) {
  const s = String(text).trim();
  if (s === "") return undefined;
  if (/^-?\d+$/.test(s)) return BigInt(s);
  const x = Number(s);
  return Number.isFinite(x) ? x : s;
}

function numberInput(name, attrs = {}) {
  return h("input", { id: nextId(name), type: "number", inputmode: "decimal", ...attrs });
}

function seedInput(name, value, label) {
  return h("input", {
    id: nextId(name), type: "text", inputmode: "numeric", autocomplete: "off",
    spellcheck: "false", value, "aria-label": label, class: "seed",
  });
}

/** Base64 (no data: prefix) PNG of an uploaded image: PNGs as they are, anything else redrawn. */
async function pngBase64(file) {
  let blob = file;
  if (file.type !== "image/png") {
    const bitmap = await createImageBitmap(file);
    const canvas = h("canvas", { width: bitmap.width, height: bitmap.height });
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    blob = await new Promise((ok) => canvas.toBlob(ok, "image/png"));
  }
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export class Controls {
  /** entry: a /models entry; spec: api.Spec; modes: what modesFor allowed; onCodeChange: live re-run. */
  constructor(root, entry, spec, modes, { onCodeChange } = {}) {
    this.root = root;
    this.entry = entry;
    this.card = entry.card;
    this.spec = spec;
    this.modes = modes;
    this.onCodeChange = onCodeChange || (() => {});
    this.fields = [];
    this.codeInputs = [];
    root.replaceChildren();
    this.build();
  }

  /** Modes (of this model's) whose endpoint schema has the request field `prop`. */
  modesWith(prop, candidates = this.modes) {
    return candidates.filter((m) => {
      const props = this.spec.properties(MODE_INFO[m].path);
      return Object.keys(props).length === 0 || prop in props;
    });
  }

  add(group, f) {
    if (!f.modes.length) return null;
    this.fields.push(f);
    group.append(f.wrap);
    return f;
  }

  build() {
    const card = this.card;
    const latentModes = this.modes.filter((m) => !IMAGE_MODES.includes(m));
    const what = h("div", { class: "group" });
    const look = h("div", { class: "group" });
    this.root.append(what, look);

    // which images: seed(s), count, index
    if (latentModes.includes("generate")) {
      this.seed = seedInput("seed", "0", "Seed");
      this.random = h("input", { type: "checkbox", id: nextId("random") });
      this.random.addEventListener("change", () => (this.seed.disabled = this.random.checked));
      const randomLabel = h("label", { for: this.random.id, class: "inline", text: "random" });
      this.add(what, field({
        name: "seed", label: "Seed", api: ["seed"], modes: ["generate"],
        hint: "same seed, same images; 'random' picks a new one (shown after generating)",
        controls: [this.seed, h("span", { class: "inline" }, this.random, randomLabel)],
      }));
      const perClass = card.conditional ? card.class_names.length : 8;
      this.count = numberInput("count", { min: 1, step: 1, value: perClass });
      this.add(what, field({ name: "count", label: "Count", api: ["count"], modes: ["generate"], controls: [this.count] }));
      this.start = numberInput("start", { min: 0, step: 1, value: 0 });
      this.add(what, field({
        name: "start_index", label: "Start index", api: ["start_index"], modes: ["generate"],
        hint: "images start_index .. start_index + count - 1 of the seed", controls: [this.start],
      }));
    }
    const pairModes = latentModes.filter((m) => m === "interpolate" || m === "mix");
    if (pairModes.length) {
      this.seedA = seedInput("seed-a", "1", "Seed A");
      this.seedB = seedInput("seed-b", "2", "Seed B");
      this.add(what, field({
        name: "seeds", label: "Seeds A → B", api: ["seeds", "indices", "latents"], modes: pairModes,
        controls: [this.seedA, h("span", { class: "arrow", "aria-hidden": "true", text: "→" }), this.seedB],
      }));
    }
    if (latentModes.includes("traverse")) {
      this.traverseSeeds = h("input", { id: nextId("tseeds"), type: "text", value: "0, 1, 2, 3", inputmode: "numeric" });
      this.add(what, field({
        name: "traverse-seeds", label: "Seeds (one row each)", api: ["seeds", "seed"], modes: ["traverse"],
        hint: "comma-separated", controls: [this.traverseSeeds],
      }));
      const codes = inputsOf(card, ...CODE_KINDS);
      this.sweep = h("select", { id: nextId("code") }, codes.map((c) => h("option", { value: c.name, text: c.name })));
      this.sweep.addEventListener("change", () => this.setMode(this.mode));
      this.add(what, field({ name: "code", label: "Code to sweep", api: ["code"], modes: ["traverse"], controls: [this.sweep] }));
    }
    const stepModes = this.modesWith("steps", latentModes.filter((m) => m === "interpolate" || m === "traverse"));
    if (stepModes.length) {
      this.steps = numberInput("steps", { min: 2, step: 1, value: DEFAULT_STEPS });
      this.add(what, field({ name: "steps", label: "Steps", api: ["steps"], modes: stepModes, hint: "frames, both ends included", controls: [this.steps] }));
    }
    if (latentModes.includes("interpolate")) {
      const methods = this.spec.choices("/interpolate", "method") || ["slerp", "lerp"];
      this.method = h("select", { id: nextId("method") }, methods.map((m) => h("option", { value: m, text: m })));
      this.add(what, field({ name: "method", label: "Path", api: ["method"], modes: ["interpolate"], controls: [this.method] }));
    }
    if (latentModes.includes("mix")) this.buildCrossover(what);

    // how they look: class, truncation, codes
    if (card.conditional) {
      this.balanced = h("option", { value: "balanced", text: "balanced (image i: class i mod n)" });
      this.klass = h("select", { id: nextId("class") }, this.balanced,
        card.class_names.map((c) => h("option", { value: c, text: c })));
      this.add(look, field({
        name: "class", label: "Class", api: ["labels", "label"],
        modes: latentModes.filter((m) => this.modesWith("label").includes(m) || this.modesWith("labels").includes(m)),
        controls: [this.klass],
      }));
    }
    if (inputsOf(card, "latent").length) {
      this.truncation = numberInput("truncation", { min: 0.1, step: 0.1, placeholder: "off" });
      this.add(look, field({
        name: "truncation", label: "Truncation", api: ["truncation"], modes: this.modesWith("truncation", latentModes),
        hint: "redraw latent entries beyond ±t (empty: off); smaller = more typical images",
        controls: [this.truncation],
      }));
    }
    const codes = inputsOf(card, ...CODE_KINDS);
    if (codes.length) {
      const box = fieldset("Codes");
      box.classList.add("codes");
      const codeModes = this.modesWith("codes", latentModes);
      for (const spec of codes) this.buildCode(box, spec, codeModes);
      if (codeModes.length) look.append(box);
      this.codesBox = box;
    }
    if (this.modes.includes("translate")) this.buildImage(what);
    const repairMode = this.modes.find((m) => m === "restore" || m === "upscale");
    if (repairMode) {
      this.repair = new RepairInput(card, repairMode);
      for (const f of this.repair.fields()) this.add(what, f);
    }
    for (const mode of this.modes) this.buildGeneric(look, mode);
  }

  buildCrossover(group) {
    // the range comes from the card's crossover input (e.g. mix_layer: 0..style layers) when it has one
    const layer = this.card.inputs.find((i) => i.kind !== "latent" && /mix|crossover|layer/i.test(i.name) && (i.range || i.num_choices));
    const spec = layer || mixingInput(this.card);
    const props = Object.keys(this.spec.properties("/mix"));
    this.crossoverName = props.find((p) => !KNOWN.has(p) && /crossover|layer|mix/i.test(p)) || "crossover";
    const schema = this.spec.property("/mix", this.crossoverName) || {};
    let lo = schema.minimum ?? 0;
    let hi = schema.maximum ?? 16;
    if (spec && spec.num_choices) [lo, hi] = [0, spec.num_choices - 1];
    else if (spec && spec.range) [lo, hi] = spec.range;
    const start = spec && typeof spec.default === "number" ? spec.default : Math.round((lo + hi) / 2);
    this.crossover = h("input", { id: nextId("crossover"), type: "range", min: lo, max: hi, step: 1, value: start });
    const out = h("output", { for: this.crossover.id, text: String(start) });
    this.crossover.addEventListener("input", () => (out.textContent = this.crossover.value));
    this.add(group, field({
      name: "crossover", label: "Crossover layer", api: [this.crossoverName], modes: ["mix"],
      hint: "coarse styles (pose, shape) from seed A up to this layer, fine ones (texture) from seed B",
      controls: [this.crossover, out],
    }));
  }

  /** One code input: a slider over its choices / range (number box without a range), off = from the seed. */
  buildCode(box, spec, modes) {
    const on = h("input", { type: "checkbox", id: nextId(`set-${spec.name}`) });
    const isInt = spec.kind === "categorical";
    const [lo, hi] = isInt ? [0, spec.num_choices - 1] : spec.range || [null, null];
    const start = typeof spec.default === "number" ? spec.default : isInt ? 0 : lo !== null ? (lo + hi) / 2 : 0;
    const slider = lo !== null
      ? h("input", { type: "range", id: nextId(`code-${spec.name}`), min: lo, max: hi, step: isInt ? 1 : (hi - lo) / 100 || 0.01, value: start })
      : numberInput(`code-${spec.name}`, { step: "any", value: start });
    const out = h("output", { for: slider.id });
    const unset = spec.kind === "scalar" ? `default ${spec.default}` : "from the seed";
    const show = () => (out.textContent = on.checked ? String(Number(slider.value)) : unset);
    slider.addEventListener("input", () => {
      on.checked = true;
      show();
    });
    on.addEventListener("change", () => {
      show();
      this.onCodeChange();
    });
    slider.addEventListener("change", () => this.onCodeChange());
    show();
    const limits = isInt ? `0..${hi}` : lo !== null ? `[${lo}, ${hi}]` : "any number";
    const f = field({
      name: `code-${spec.name}`, label: spec.name, api: [`codes.${spec.name}`], modes,
      hint: `${spec.kind}, ${limits}${spec.description ? `: ${spec.description}` : ""}`,
      controls: [slider, out, h("span", { class: "inline" }, on, h("label", { for: on.id, class: "inline", text: "fixed" }))],
    });
    if (this.add(box, f)) this.codeInputs.push({ spec, on, slider, f });
  }

  buildImage(group) {
    const props = this.spec.properties("/translate");
    this.imageName = "image" in props ? "image" : "images" in props ? "images"
      : Object.keys(props).find((p) => /base64|png/i.test(props[p].description || "")) || "image";
    this.file = h("input", { id: nextId("image"), type: "file", accept: "image/png,image/jpeg" });
    this.preview = h("img", { class: "preview", alt: "the uploaded image", hidden: true });
    this.imageData = null;
    this.file.addEventListener("change", () => {
      const f = this.file.files[0];
      this.imageData = f ? pngBase64(f) : null;
      if (f) {
        this.preview.src = URL.createObjectURL(f);
        this.preview.hidden = false;
      }
    });
    const [c, hh, w] = this.card.image_shape;
    this.add(group, field({
      name: "image", label: "Input image", api: [this.imageName, "image", "images"], modes: ["translate"],
      hint: `PNG or JPEG; the model works at ${w}x${hh} with ${c} channel${c === 1 ? "" : "s"}`,
      controls: [this.file, this.preview],
    }));
  }

  /** Fields of an endpoint's schema this page has no special control for (enum, number, text, yes/no). */
  buildGeneric(group, mode) {
    const path = MODE_INFO[mode].path;
    this.generic = this.generic || [];
    for (const [name, raw] of Object.entries(this.spec.properties(path))) {
      if (KNOWN.has(name) || (mode === "mix" && name === this.crossoverName)) continue;
      if (name === "noise_mode" && !inputsOf(this.card, "noise").length) continue;
      const p = this.spec.resolve(raw);
      const choices = this.spec.choices(path, name) || (p.type === "boolean" ? [true, false] : null);
      if (!choices && !["integer", "number", "string"].includes(p.type)) continue;
      const existing = this.generic.find((g) => g.name === name && g.choices === Boolean(choices));
      if (existing) {
        existing.f.modes.push(mode);
        continue;
      }
      const id = nextId(`x-${name}`);
      const dflt = p.default === undefined || p.default === null ? "" : String(p.default);
      const input = choices
        ? h("select", { id }, h("option", { value: "", text: dflt ? `default (${dflt})` : "default" }),
            choices.map((c) => h("option", { value: JSON.stringify(c), text: String(c) })))
        : p.type === "string" ? h("input", { id, type: "text", placeholder: dflt })
        : numberInput(`x-${name}`, { id, placeholder: dflt, step: p.type === "integer" ? 1 : "any" });
      const f = field({ name: `x-${name}`, label: name.replace(/_/g, " "), api: [name], modes: [mode],
        hint: p.description, controls: [input] });
      if (this.add(group, f)) this.generic.push({ name, f, input, choices: Boolean(choices) });
    }
  }

  /** Show the fields of `mode`, hide the others. */
  setMode(mode) {
    this.mode = mode;
    for (const f of this.fields) f.wrap.hidden = !f.modes.includes(mode);
    if (this.codesBox) this.codesBox.hidden = !this.codeInputs.some((c) => c.f.modes.includes(mode));
    if (this.balanced) {
      const allowed = mode === "generate";
      this.balanced.hidden = this.balanced.disabled = !allowed;
      // the other modes need one class; coming back to generate restores "balanced"
      if (!allowed && this.klass.value === "balanced") {
        this.klass.value = this.card.class_names[0];
        this.leftBalanced = this.klass.value;
      } else if (allowed && this.leftBalanced !== undefined) {
        if (this.klass.value === this.leftBalanced) this.klass.value = "balanced";
        this.leftBalanced = undefined;
      }
    }
    if (this.sweep) for (const c of this.codeInputs) c.f.wrap.classList.toggle("swept", mode === "traverse" && c.spec.name === this.sweep.value);
  }

  codes(mode, skip = null) {
    const out = {};
    for (const c of this.codeInputs) {
      if (!c.on.checked || !c.f.modes.includes(mode) || c.spec.name === skip) continue;
      const v = Number(c.slider.value);
      out[c.spec.name] = c.spec.kind === "categorical" ? BigInt(Math.round(v)) : v;
    }
    return Object.keys(out).length ? out : undefined;
  }

  visible(name) {
    const f = this.fields.find((x) => x.name === name);
    return Boolean(f && f.modes.includes(this.mode));
  }

  seedList() {
    return this.traverseSeeds.value.split(/[\s,]+/).filter(Boolean).map(numberValue);
  }

  /** The request body of a mode (no format), holding only fields its endpoint's schema knows. */
  async body(mode) {
    const b = { model: this.entry.name };
    const klass = this.visible("class") ? this.klass.value : undefined;
    const trunc = this.visible("truncation") ? numberValue(this.truncation.value) : undefined;
    if (mode === "generate") {
      Object.assign(b, {
        seed: this.random.checked ? undefined : numberValue(this.seed.value),
        count: numberValue(this.count.value),
        start_index: numberValue(this.start.value),
        labels: klass,
      });
    } else if (mode === "interpolate" || mode === "mix") {
      const [a, z] = [numberValue(this.seedA.value), numberValue(this.seedB.value)];
      // /interpolate goes from seed A to seed B; /mix gives seed A's coarse styles B's fine ones
      Object.assign(b, { seeds: [a, z], row_seeds: [a], col_seeds: [z], label: klass, labels: klass });
      if (mode === "interpolate") Object.assign(b, { steps: numberValue(this.steps.value), method: this.method.value });
      else b[this.crossoverName] = numberValue(this.crossover.value);
    } else if (mode === "traverse") {
      const seeds = this.seedList();
      const swept = this.card.inputs.find((i) => i.name === this.sweep.value);
      // a categorical code takes all its values; steps only spread a continuous range
      const steps = this.steps && swept && swept.kind !== "categorical" ? numberValue(this.steps.value) : undefined;
      Object.assign(b, { code: this.sweep.value, seeds, seed: seeds[0], steps, label: klass, labels: klass });
    } else if (mode === "translate") {
      const data = this.imageData ? await this.imageData : undefined;
      b[this.imageName] = this.imageName === "images" && data ? [data] : data;
    } else if (this.repair && mode === this.repair.mode) {
      Object.assign(b, this.repair.body());
    }
    if (!IMAGE_MODES.includes(mode)) Object.assign(b, { truncation: trunc, codes: this.codes(mode, mode === "traverse" ? this.sweep.value : null) });
    for (const g of this.generic || []) {
      if (!g.f.modes.includes(mode) || g.input.value === "") continue;
      b[g.name] = g.choices ? JSON.parse(g.input.value) : g.input.type === "number" ? numberValue(g.input.value) : g.input.value;
    }
    // a label only for the field the endpoint takes (labels for /generate, label elsewhere)
    const props = this.spec.properties(MODE_INFO[mode].path);
    if (Object.keys(props).length) for (const k of Object.keys(b)) if (k !== "model" && !(k in props)) delete b[k];
    return b;
  }

  clearErrors() {
    for (const f of this.fields) {
      f.error.textContent = "";
      for (const c of f.wrap.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
    }
  }

  /** Put an API error next to the visible field it names; false when no field matches. */
  showError(err) {
    const name = err.field.replace(/\[\d+\]/g, "");
    const candidates = [name, name.split(".")[0]];
    for (const key of candidates) {
      const f = this.fields.find((x) => x.modes.includes(this.mode) && x.api.includes(key));
      if (f) {
        f.error.textContent = err.message;
        for (const c of f.wrap.querySelectorAll("input, select")) c.setAttribute("aria-invalid", "true");
        f.main.focus();
        return true;
      }
    }
    return false;
  }

  /** After a random-seed request: show the seed the service picked. */
  showSeed(seed) {
    if (this.seed && seed !== null && seed !== undefined) this.seed.value = String(seed);
  }
}
