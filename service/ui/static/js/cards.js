// What a model card says, for people: how it was trained, measured and exported, and which
// modes (generate, interpolate, mix, traverse, translate, restore, upscale) its declared inputs allow here.

export const CODE_KINDS = ["categorical", "continuous", "scalar"];

export const inputsOf = (card, ...kinds) => card.inputs.filter((i) => kinds.includes(i.kind));
export const hasKind = (card, kind) => card.inputs.some((i) => i.kind === kind);

const fmt = (x, digits = 3) => (typeof x === "number" ? Number(x.toPrecision(digits)).toLocaleString("en") : "?");
const pct = (x) => (typeof x === "number" ? `${(100 * x).toFixed(1)}%` : "?");
const count = (x) => (typeof x === "number" ? x.toLocaleString("en") : "?");

/** "trained on ..." line: data set, steps, time, architecture. */
export function trainedOn(card) {
  const d = card.dataset || {};
  const data = d.name
    ? `${d.name}${d.n ? ` (${count(d.n)} images${d.split ? `, ${d.split} split` : ""})` : ""}`
    : "unknown data";
  const steps = card.steps ? `, ${count(card.steps)} steps` : "";
  const time = card.train_seconds ? ` in ${fmt(card.train_seconds, 3)} s` : "";
  return `${data}${steps}${time}; ${card.arch} / ${card.variant}`;
}

/** Measured quality from the card's metrics, or a plain "not measured". */
export function quality(card) {
  const m = card.metrics;
  if (!m || typeof m.fid !== "number") return "not measured";
  const parts = [`FID ${fmt(m.fid)}`];
  if (typeof m.fid_floor === "number" && m.fid_floor > 0) parts[0] += ` (${fmt(m.fid / m.fid_floor, 2)}x the real-data floor)`;
  if (m.n) parts[0] += ` at n=${count(m.n)}`;
  if (typeof m.class_accuracy === "number") parts.push(`class accuracy ${pct(m.class_accuracy)}`);
  if (typeof m.precision === "number" && typeof m.recall === "number")
    parts.push(`precision ${fmt(m.precision, 2)} / recall ${fmt(m.recall, 2)}`);
  if (typeof m.modes_covered === "number") parts.push(`${m.modes_covered}/${card.num_classes || "?"} modes`);
  if (m.evaluator) parts.push(`evaluator ${m.evaluator}`);
  return parts.join(", ");
}

/** Export precision and the parity measured against the training framework. */
export function exportParity(card) {
  const e = card.export;
  if (!e) return "not exported";
  const parts = [`${e.precision}, opset ${e.opset}`];
  if (typeof e.parity_max_abs_diff === "number") {
    const levels = e.parity_max_abs_diff;
    const batches = (e.parity_batches || []).join(", ");
    parts.push(`max ${fmt(levels)} uint8 level${levels === 1 ? "" : "s"} off torch${batches ? ` (batches ${batches})` : ""}`);
  }
  if (typeof e.float_parity_max_abs_diff === "number") parts.push(`float diff ${e.float_parity_max_abs_diff.toExponential(1)}`);
  if (typeof e.fid === "number") parts.push(`FID ${fmt(e.fid)} vs fp32 ${fmt(e.fid_fp32)}`);
  return parts.join(", ");
}

/** One line per declared input: name, kind and its limits. */
export function inputSummary(card) {
  return card.inputs.map((i) => {
    const shape = i.shape && i.shape.length ? ` [${i.shape.join("x")}]` : "";
    let limits = "";
    if (i.kind === "class") limits = ` (${card.class_names.length} classes)`;
    else if (i.num_choices) limits = ` (0..${i.num_choices - 1})`;
    else if (i.range) limits = ` [${i.range[0]}, ${i.range[1]}]`;
    return `${i.name}: ${i.kind}${shape}${limits}`;
  });
}

/** The input that drives StyleGAN-style mixing: a second latent, or an input named for mixing. */
export function mixingInput(card) {
  const latents = inputsOf(card, "latent");
  if (!latents.length) return null;
  if (latents.length > 1) return latents[1];
  return card.inputs.find((i) => i.kind !== "latent" && /mix|crossover/i.test(`${i.name} ${i.description || ""}`)) || null;
}

export const MODE_INFO = {
  generate: { label: "Generate", path: "/generate", run: "Generate" },
  interpolate: { label: "Interpolate", path: "/interpolate", run: "Interpolate" },
  mix: { label: "Style mix", path: "/mix", run: "Mix" },
  traverse: { label: "Traverse a code", path: "/traverse", run: "Traverse" },
  translate: { label: "Translate", path: "/translate", run: "Translate" },
  restore: { label: "Restore", path: "/restore", run: "Restore" },
  upscale: { label: "Upscale", path: "/upscale", run: "Upscale" },
};

/** The modes whose request carries images (the repair modes also a mask) instead of seeds. */
export const IMAGE_MODES = ["translate", "restore", "upscale"];

/** The modes this model supports on this service: its card declares the inputs, /docs.json the endpoint. */
export function modesFor(card, spec) {
  const latent = hasKind(card, "latent");
  const image = hasKind(card, "image");
  const wanted = {
    generate: !image,
    interpolate: latent && !image,
    mix: !image && mixingInput(card) !== null,
    traverse: !image && inputsOf(card, ...CODE_KINDS).length > 0,
    translate: image && !card.repair,
    restore: Boolean(card.repair) && card.repair.task === "restore",
    upscale: Boolean(card.repair) && card.repair.task === "upscale",
  };
  return Object.keys(MODE_INFO).filter((m) => wanted[m] && spec.has(MODE_INFO[m].path));
}
