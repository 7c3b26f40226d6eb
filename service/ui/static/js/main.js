// The playground page: models from /models, the chosen model's controls, requests, results.

import { ApiError, Spec, apiUrl, getJSON, post, setToken, token } from "./api.js";
import { MODE_INFO, exportParity, inputSummary, modesFor, quality, trainedOn } from "./cards.js";
import { Controls } from "./controls.js";
import { Compare } from "./compare.js";
import { curlCommand } from "./curl.js";
import { h } from "./dom.js";
import { Player, imagesOf, renderGrid, saveAs } from "./results.js";

const $ = (id) => document.getElementById(id);
const THEME_KEY = "gan-playground-theme";
// without /docs.json the two endpoints every version of the service has
const CORE = { paths: { "/generate": { post: {} }, "/interpolate": { post: {} } } };

const state = { models: [], spec: new Spec(CORE), entry: null, controls: null, mode: null, last: null, busy: false, again: false, answered: 0 };
let player;
let compare;

// ---- theme and token ------------------------------------------------------------------------
function initTheme() {
  const sel = $("theme");
  sel.value = localStorage.getItem(THEME_KEY) || "auto";
  const apply = () => {
    if (sel.value === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = sel.value;
    localStorage.setItem(THEME_KEY, sel.value);
  };
  sel.addEventListener("change", apply);
  apply();
}

function initToken() {
  const input = $("token");
  input.value = token();
  if (input.value) $("auth").open = true;
  const apply = () => {
    setToken(input.value.trim());
    $("token-error").textContent = "";
    input.removeAttribute("aria-invalid");
    load();
  };
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    apply();
  });
  input.addEventListener("change", apply);
}

function showTokenError(message) {
  $("auth").open = true;
  $("token-error").textContent = message;
  $("token").setAttribute("aria-invalid", "true");
  $("token").focus();
}

// ---- models ---------------------------------------------------------------------------------
function modelCard(entry, k, chosen) {
  const id = `model-${k}`;
  const radio = h("input", { type: "radio", name: "model", id, value: entry.name, checked: entry.name === chosen });
  radio.addEventListener("change", () => radio.checked && selectModel(entry.name));
  const c = entry.card;
  const [ch, hh, w] = c.image_shape;
  const row = (term, text) => [h("dt", { text: term }), h("dd", { text })];
  return h(
    "div",
    { class: "model", "data-model": entry.name },
    h("div", { class: "model-head" }, radio,
      h("label", { for: id, class: "model-name", text: entry.name }),
      entry.default ? h("span", { class: "badge", text: "default" }) : null),
    h("dl", {},
      row("Trained on", trainedOn(c)),
      row("Quality", quality(c)),
      row("Export", exportParity(c)),
      entry.does ? row("Does", entry.does) : null,
      row("Makes", `${w}x${hh}, ${ch} channel${ch === 1 ? "" : "s"}${c.conditional ? `, ${c.class_names.length} classes` : ""}`),
      row("Inputs", inputSummary(c).join("; ")),
      row("Runs on", `${entry.provider}, ${entry.threads} thread${entry.threads === 1 ? "" : "s"}`)),
    h("details", { class: "card-json" }, h("summary", { text: "card JSON" }), h("pre", { text: JSON.stringify(c, null, 2) })),
  );
}

async function load() {
  const status = $("models-status");
  status.textContent = "Loading models…";
  let doc;
  try {
    doc = await getJSON("/models");
  } catch (e) {
    status.textContent = `Could not list the models: ${e.message}`;
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) showTokenError(e.message);
    return;
  }
  try {
    state.spec = new Spec(await getJSON("/docs.json"));
  } catch {
    state.spec = new Spec(CORE);
  }
  state.models = doc.models;
  const wanted = new URLSearchParams(location.hash.slice(1));
  const chosen = doc.models.some((m) => m.name === wanted.get("model")) ? wanted.get("model") : doc.default;
  status.textContent = `${doc.models.length} model${doc.models.length === 1 ? "" : "s"}; default ${doc.default}.`;
  $("model-list").replaceChildren(...doc.models.map((m, k) => modelCard(m, k, chosen)));
  compare.load(doc.models, state.spec);
  selectModel(chosen, wanted.get("mode"));
}

function selectModel(name, mode = null) {
  const entry = state.models.find((m) => m.name === name);
  state.entry = entry;
  state.last = null;
  $("result").hidden = true;
  $("form-error").textContent = "";
  for (const el of document.querySelectorAll(".model")) el.classList.toggle("chosen", el.dataset.model === name);
  const modes = modesFor(entry.card, state.spec);
  const tabs = $("modes");
  tabs.replaceChildren(
    ...modes.map((m) => h("button", {
      type: "button", role: "tab", id: `tab-${m}`, "data-mode": m, "aria-controls": "panel",
      "aria-selected": "false", tabindex: "-1", text: MODE_INFO[m].label, onclick: () => setMode(m),
    })),
  );
  const none = $("no-modes");
  none.hidden = modes.length > 0;
  $("form").hidden = modes.length === 0;
  if (!modes.length) {
    none.textContent = entry.card.inputs.some((i) => i.kind === "image")
      ? `${name} translates input images, but this service has no /translate endpoint (see the API reference).`
      : `${name} declares no input this page can drive.`;
    return;
  }
  state.controls = new Controls($("fields"), entry, state.spec, modes, { onCodeChange: () => state.last && run() });
  setMode(modes.includes(mode) ? mode : modes[0], false);
}

function setMode(mode, focus = true) {
  state.mode = mode;
  for (const tab of $("modes").children) {
    const on = tab.dataset.mode === mode;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    if (on && focus) tab.focus();
  }
  $("panel").setAttribute("aria-labelledby", `tab-${mode}`);
  state.controls.setMode(mode);
  state.controls.clearErrors();
  $("run").textContent = MODE_INFO[mode].run;
  $("form-error").textContent = "";
  history.replaceState(null, "", "#" + new URLSearchParams({ model: state.entry.name, mode }));
}

function onTabKey(ev) {
  const tabs = [...$("modes").children];
  const k = tabs.findIndex((t) => t.dataset.mode === state.mode);
  const to = { ArrowRight: k + 1, ArrowLeft: k - 1, Home: 0, End: tabs.length - 1 }[ev.key];
  if (to === undefined || !tabs.length) return;
  ev.preventDefault();
  setMode(tabs[(to + tabs.length) % tabs.length].dataset.mode);
}

// ---- requests -------------------------------------------------------------------------------
/** The format a mode's answer is shown from: JSON images where the endpoint offers them. */
function displayFormat(mode) {
  if (mode === "generate") return "png";
  if (mode === "interpolate") return "frames";
  const choices = state.spec.choices(MODE_INFO[mode].path, "format");
  if (!choices) return null;
  return ["png", "frames", "grid"].find((f) => choices.includes(f)) || null;
}

function downloadFormats(mode) {
  const choices = state.spec.choices(MODE_INFO[mode].path, "format") || (mode === "generate" ? ["png", "grid", "npz"] : ["grid", "frames", "npz"]);
  return { png: choices.includes("grid") ? "grid" : null, npz: choices.includes("npz") ? "npz" : null };
}

function setBusy(on) {
  state.busy = on;
  $("run").setAttribute("aria-disabled", String(on));
  $("busy").textContent = on ? "Working…" : "";
  $("result").setAttribute("aria-busy", String(on));
}

function showError(e) {
  if (e instanceof ApiError) {
    if (e.status === 401 || e.status === 403 || /^(token|authorization)$/i.test(e.field)) return showTokenError(e.message);
    if (state.controls.showError(e)) return;
  }
  $("form-error").textContent = e.message;
}

function describe(last, n) {
  const b = last.body;
  const parts = [last.model];
  if (last.mode === "generate") parts.push(`seed ${last.seed ?? b.seed}`, `${n} image${n === 1 ? "" : "s"}`);
  else if (b.seeds) parts.push(`seeds ${b.seeds.join(", ")}`);
  if (last.mode !== "generate") parts.push(`${n} ${last.mode === "interpolate" ? "frame" : "image"}${n === 1 ? "" : "s"}`);
  if (b.labels !== undefined || b.label !== undefined) parts.push(`class ${b.labels ?? b.label}`);
  return parts.join(" · ");
}

async function run() {
  if (state.busy) {
    state.again = true;
    return;
  }
  const { controls, mode, entry } = state;
  controls.clearErrors();
  $("form-error").textContent = "";
  setBusy(true);
  try {
    const body = await controls.body(mode);
    const fmt = displayFormat(mode);
    const path = MODE_INFO[mode].path;
    const res = await post(path, fmt ? { ...body, format: fmt } : body);
    const seed = res.headers.get("x-seed");
    const images = await imagesOf(res);
    if (mode === "generate" && body.seed === undefined && seed) {
      body.seed = BigInt(seed); // replays (download, curl) get the exact images shown
      controls.showSeed(seed);
    }
    state.last = { mode, path, body, fmt, seed, model: entry.name, card: entry.card };
    const input = controls.repair && mode === controls.repair.mode ? controls.repair.inputSrc() : null;
    // the repair modes: input | output side by side
    showResult(input ? [{ src: input, caption: "input" }, ...images.map((im) => ({ ...im, caption: "output" }))] : images);
  } catch (e) {
    showError(e);
  } finally {
    $("result").dataset.answered = String(++state.answered); // for scripts: one more request answered
    setBusy(false);
    if (state.again) {
      state.again = false;
      run();
    }
  }
}

function showResult(images) {
  const last = state.last;
  $("result").hidden = false;
  $("result-info").textContent = describe(last, images.length);
  const animate = last.mode === "interpolate" && images.length > 1;
  $("player").hidden = !animate;
  if (animate) player.load(images.map((im) => im.src), `interpolation, ${images.length} frames`);
  else player.pause();
  renderGrid($("grid"), images, last.card);
  const f = downloadFormats(last.mode);
  $("download-png").hidden = !f.png;
  $("download-npz").hidden = !f.npz;
  if (!$("curl-box").hidden) $("curl").textContent = curlFor(last);
}

function fileName(last, ext) {
  const seeds = last.body.seeds ? last.body.seeds.join("-") : last.body.seed;
  return `${last.model}-${last.mode}${seeds !== undefined ? `-seed${seeds}` : ""}.${ext}`;
}

async function download(kind) {
  const last = state.last;
  const fmt = downloadFormats(last.mode)[kind];
  try {
    const res = await post(last.path, { ...last.body, format: fmt });
    await saveAs(res, fileName(last, kind));
  } catch (e) {
    showError(e);
  }
}

function curlFor(last) {
  const body = last.fmt ? { ...last.body, format: last.fmt } : last.body;
  const binary = !["png", "frames"].includes(last.fmt);
  return curlCommand(apiUrl(last.path), body, { withToken: Boolean(token()), out: binary ? fileName(last, "png") : null });
}

async function copyCurl() {
  const text = curlFor(state.last);
  const pre = $("curl");
  pre.textContent = text;
  $("curl-box").hidden = false;
  $("copy-curl").setAttribute("aria-expanded", "true");
  try {
    await navigator.clipboard.writeText(text);
    $("curl-status").textContent = "Copied to the clipboard.";
  } catch {
    getSelection().selectAllChildren(pre);
    pre.focus();
    $("curl-status").textContent = "Selected: copy it with Ctrl+C (the clipboard is not available here).";
  }
}

// ---- start ------------------------------------------------------------------------------------
function init() {
  initTheme();
  initToken();
  compare = new Compare({ form: $("compare-form"), seed: $("compare-seed"), cls: $("compare-class"), status: $("compare-status"), grid: $("compare-grid") });
  player = new Player({ img: $("anim"), slider: $("frame"), out: $("frame-out"), button: $("play"), fps: $("fps") });
  $("modes").addEventListener("keydown", onTabKey);
  $("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    run();
  });
  $("download-png").addEventListener("click", () => download("png"));
  $("download-npz").addEventListener("click", () => download("npz"));
  $("copy-curl").addEventListener("click", copyCurl);
  load();
}

init();
