// Showing answers: a grid of the images (as the API sent their PNG bytes), an animation player
// for interpolation frames, and saving an answer as a file.

import { h } from "./dom.js";

/** Images of an answer: JSON {images: [{png, index, label}]} or one PNG (a grid). */
export async function imagesOf(res) {
  const type = res.headers.get("content-type") || "";
  if (type.includes("application/json")) {
    const doc = await res.json();
    if (!Array.isArray(doc.images)) throw new Error("the answer holds no images");
    return doc.images.map((im) => ({ src: `data:image/png;base64,${im.png}`, index: im.index, label: im.label }));
  }
  if (type.startsWith("image/")) {
    return [{ src: URL.createObjectURL(await res.blob()), index: null, label: null, whole: true }];
  }
  throw new Error(`unexpected answer (${type || "no content type"})`);
}

/** Display scale: small images (28x28 digits) are enlarged with crisp pixels. */
export function scaleFor(card) {
  const w = card.image_shape[2];
  return Math.max(1, Math.min(12, Math.round(96 / w)));
}

export function renderGrid(grid, images, card) {
  const scale = scaleFor(card);
  grid.style.setProperty("--cell", `${card.image_shape[2] * scale}px`);
  grid.replaceChildren(
    ...images.map((im) => {
      const cls = im.label !== null && im.label !== undefined ? card.class_names[im.label] ?? im.label : null;
      const caption = im.caption ?? (im.whole ? "" : `#${im.index}${cls !== null ? ` · ${cls}` : ""}`);
      const alt = im.caption ? `the ${im.caption} image` : im.whole ? "result image" : `image ${im.index}${cls !== null ? `, class ${cls}` : ""}`;
      const img = h("img", { src: im.src, alt });
      if (im.whole) {
        // a grid PNG: the same pixel scale as single images
        img.classList.add("whole");
        img.addEventListener("load", () => (img.style.width = `${img.naturalWidth * scale}px`), { once: true });
      }
      return h("figure", { role: "listitem", class: im.whole ? "whole" : "" }, img, caption ? h("figcaption", { text: caption }) : null);
    }),
  );
}

/** Plays a list of frames in an <img> at `fps`, looping; a range input scrubs, a button pauses. */
export class Player {
  constructor({ img, slider, out, button, fps }) {
    Object.assign(this, { img, slider, out, button, fpsInput: fps });
    this.frames = [];
    this.timer = null;
    this.k = 0;
    button.addEventListener("click", () => (this.timer ? this.pause() : this.play()));
    slider.addEventListener("input", () => {
      this.pause();
      this.show(Number(slider.value));
    });
    fps.addEventListener("change", () => this.timer && this.play());
  }

  load(frames, alt) {
    this.pause();
    this.frames = frames;
    this.slider.max = String(frames.length - 1);
    this.img.alt = alt;
    this.show(0);
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    if (!still) this.play();
  }

  show(k) {
    this.k = k;
    this.img.src = this.frames[k];
    this.slider.value = String(k);
    this.out.textContent = `${k + 1}/${this.frames.length}`;
  }

  play() {
    clearInterval(this.timer);
    const fps = Math.min(60, Math.max(1, Number(this.fpsInput.value) || 8));
    this.timer = setInterval(() => this.show((this.k + 1) % this.frames.length), 1000 / fps);
    this.button.textContent = "Pause";
    this.button.setAttribute("aria-pressed", "true");
  }

  pause() {
    clearInterval(this.timer);
    this.timer = null;
    this.button.textContent = "Play";
    this.button.setAttribute("aria-pressed", "false");
  }
}

/** Save a Response's bytes under `filename` (the browser's download). */
export async function saveAs(res, filename) {
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
