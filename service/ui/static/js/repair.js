// The input of the repair modes (/restore, /upscale): an uploaded image or a drawn example, shown at
// its own pixel size, and for a fill-in model a mask painted over it (white = lost pixels). What is
// sent: the uploaded file's own PNG bytes (or the example's), and the mask as a PNG of its size.

import { field, h, nextId } from "./dom.js";

const base64Of = (dataUrl) => dataUrl.split(",")[1];

/** Display scale of an image w px wide: small images enlarged with crisp pixels. */
const zoom = (w) => Math.max(1, Math.min(16, Math.round(112 / w)));

/** Base64 of a file's bytes (PNG as it is; other formats redrawn as PNG). */
async function fileBase64(file, canvas) {
  if (file.type === "image/png") {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  }
  return base64Of(canvas.toDataURL("image/png"));
}

export class RepairInput {
  /** card: the model's card (card.repair says the task, the mask and the size rule); mode: restore | upscale. */
  constructor(card, mode) {
    this.card = card;
    this.mode = mode;
    this.repair = card.repair;
    const [hh, w] = card.inputs[0].shape;
    this.canvas = h("canvas", { class: "repair-image", width: w, height: hh, role: "img", "aria-label": "the input image" });
    this.file = h("input", { id: nextId("image"), type: "file", accept: "image/png,image/jpeg" });
    this.example = h("button", { type: "button", text: "Draw an example", onclick: () => this.drawExample() });
    this.data = null; // base64 PNG of what is sent
    this.painted = false;
    this.stage = h("div", { class: "repair-stage" }, this.canvas);
    if (this.repair.mask) {
      this.mask = h("canvas", { class: "repair-mask", width: w, height: hh, role: "img", "aria-label": "the mask: paint the lost pixels" });
      this.stage.append(this.mask);
      this.clear = h("button", { type: "button", text: "Clear the mask", onclick: () => this.clearMask() });
      this.mask.addEventListener("pointerdown", (ev) => this.paint(ev, true));
      this.mask.addEventListener("pointermove", (ev) => ev.buttons && this.paint(ev, false));
    }
    this.file.addEventListener("change", () => this.file.files[0] && this.load(this.file.files[0]));
    this.fit();
  }

  /** The form fields: the image, and the mask for a fill-in model. */
  fields() {
    const r = this.repair;
    const [hh, w, c] = this.card.inputs[0].shape;
    const sizes = r.any_size ? `any size with sides a multiple of ${r.multiple} (trained at ${w}x${hh})` : `${w}x${hh}`;
    const out = r.scale > 1 ? `; the answer is ${r.scale}x as wide and tall` : "";
    const fields = [field({
      name: "image", label: "Input image", api: ["images", "image"], modes: [this.mode],
      hint: `PNG or JPEG, ${c} channel${c === 1 ? "" : "s"}, ${sizes}${out}`,
      controls: [this.file, this.example, this.stage],
    })];
    if (this.mask) {
      fields.push(field({
        name: "mask", label: "Mask", api: ["masks", "mask"], modes: [this.mode],
        hint: "paint the lost pixels on the image; none painted = the centre box the model was trained on",
        controls: [this.clear],
      }));
    }
    return fields;
  }

  fit() {
    const k = zoom(this.canvas.width);
    for (const c of [this.canvas, this.mask]) if (c) c.style.width = `${c.width * k}px`;
  }

  resize(w, hh) {
    for (const c of [this.canvas, this.mask]) if (c) [c.width, c.height] = [w, hh];
    this.painted = false;
    this.fit();
  }

  async load(file) {
    const bitmap = await createImageBitmap(file);
    this.resize(bitmap.width, bitmap.height);
    this.canvas.getContext("2d").drawImage(bitmap, 0, 0);
    this.data = await fileBase64(file, this.canvas);
  }

  /** A digit drawn at the model's input size (damaged for a restore model: noise), to try it without a file. */
  drawExample() {
    const [hh, w] = this.card.inputs[0].shape;
    this.resize(w, hh);
    const ctx = this.canvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, w, hh);
    ctx.fillStyle = "#fff";
    ctx.font = `bold ${Math.round(hh * 0.9)}px sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("7", w / 2, hh / 2);
    if (this.mode === "restore" && !this.repair.mask) {
      const px = ctx.getImageData(0, 0, w, hh);
      let s = 12345;
      for (let i = 0; i < px.data.length; i += 4) {
        s = (s * 1103515245 + 12345) % 2147483648; // a fixed pseudo-random grain, the same every time
        const v = Math.max(0, Math.min(255, px.data[i] + ((s / 2147483648) - 0.5) * 120));
        px.data[i] = px.data[i + 1] = px.data[i + 2] = v;
      }
      ctx.putImageData(px, 0, 0);
    }
    this.data = base64Of(this.canvas.toDataURL("image/png"));
  }

  paint(ev, start) {
    ev.preventDefault();
    if (start) this.mask.setPointerCapture(ev.pointerId);
    const rect = this.mask.getBoundingClientRect();
    const x = ((ev.clientX - rect.left) / rect.width) * this.mask.width;
    const y = ((ev.clientY - rect.top) / rect.height) * this.mask.height;
    const ctx = this.mask.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.beginPath();
    ctx.arc(x, y, Math.max(1, this.mask.width / 14), 0, 2 * Math.PI);
    ctx.fill();
    this.painted = true;
  }

  clearMask() {
    this.mask.getContext("2d").clearRect(0, 0, this.mask.width, this.mask.height);
    this.painted = false;
  }

  /** The mask as sent: white strokes on black, PNG base64; undefined when nothing is painted. */
  maskData() {
    if (!this.mask || !this.painted) return undefined;
    const out = h("canvas", { width: this.mask.width, height: this.mask.height });
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.drawImage(this.mask, 0, 0);
    return base64Of(out.toDataURL("image/png"));
  }

  /** The request's images (and masks) fields. */
  body() {
    const b = { images: this.data ? [this.data] : undefined };
    const mask = this.maskData();
    if (mask) b.masks = [mask];
    return b;
  }

  /** What the result shows left of the output: the input as sent. */
  inputSrc() {
    return this.data ? `data:image/png;base64,${this.data}` : null;
  }
}
