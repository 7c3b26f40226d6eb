// Talking to the service this page came from: JSON bodies (with exact big integers), the optional
// bearer token, errors as the API words them, and what /docs.json says the service offers.

const TOKEN_KEY = "gan-playground-token";

/** Absolute URL of an API path, relative to the folder above this page (the service's root). */
export function apiUrl(path) {
  return new URL("../" + path.replace(/^\//, ""), location.href).href;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer that is not 2xx: the API's own one-line message and the field it names. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
    this.field = fieldOf(message);
  }
}

/** The text before the first ':' names the field ("codes.gain: must be in [0, 2], got 3"). */
export function fieldOf(message) {
  const m = /^([A-Za-z_][\w.]*(?:\[\d+\])*(?:\.[\w]+)*)\s*:/.exec(message);
  return m ? m[1] : "";
}

/** JSON text of a body; BigInt values (seeds up to 2^63-1) are written as exact integers. */
export function toJSON(value) {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return "[" + value.map(toJSON).join(",") + "]";
  if (value !== null && typeof value === "object") {
    const parts = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => JSON.stringify(k) + ":" + toJSON(v));
    return "{" + parts.join(",") + "}";
  }
  return JSON.stringify(value);
}

function headers(withBody) {
  const h = {};
  if (withBody) h["Content-Type"] = "application/json";
  const t = token();
  if (t) h["Authorization"] = `Bearer ${t}`;
  return h;
}

async function errorOf(res) {
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const doc = await res.json();
    if (doc && typeof doc.error === "string") message = doc.error;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(message, res.status);
}

async function send(path, init) {
  let res;
  try {
    res = await fetch(apiUrl(path), init);
  } catch (e) {
    throw new ApiError(`service unreachable (${e.message})`, 0);
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function getJSON(path) {
  const res = await send(path, { headers: headers(false) });
  return res.json();
}

/** POST a JSON body; the raw Response (JSON, PNG or npz) comes back, or an ApiError is thrown. */
export function post(path, body) {
  return send(path, { method: "POST", headers: headers(true), body: toJSON(body) });
}

/** What the OpenAPI document says about the service's endpoints and their request bodies. */
export class Spec {
  constructor(doc) {
    this.doc = doc || { paths: {}, components: {} };
  }

  has(path) {
    return Boolean(this.doc.paths && this.doc.paths[path] && this.doc.paths[path].post);
  }

  resolve(node) {
    let n = node || {};
    for (let hops = 0; n.$ref && hops < 8; hops++) {
      const name = n.$ref.split("/").pop();
      n = (this.doc.components && this.doc.components.schemas && this.doc.components.schemas[name]) || {};
    }
    if (n.allOf && n.allOf.length === 1) return this.resolve(n.allOf[0]);
    return n;
  }

  /** {name: schema} of an endpoint's JSON body (empty when unknown). */
  properties(path) {
    if (!this.has(path)) return {};
    const body = this.doc.paths[path].post.requestBody;
    const schema = body && body.content && body.content["application/json"];
    return (schema && this.resolve(schema.schema).properties) || {};
  }

  property(path, name) {
    const p = this.properties(path)[name];
    return p ? this.resolve(p) : null;
  }

  /** The allowed values of an enum field, or null. */
  choices(path, name) {
    const p = this.property(path, name);
    if (!p) return null;
    if (Array.isArray(p.enum)) return p.enum;
    const alt = (p.anyOf || p.oneOf || []).map((a) => this.resolve(a));
    const values = alt.flatMap((a) => a.enum || []);
    return values.length ? values : null;
  }
}
