// The request the page just made, as a curl command for scripts (a token is never written out:
// the command reads it from $GAN_API_TOKEN).

import { toJSON } from "./api.js";

const quote = (s) => "'" + s.replace(/'/g, "'\\''") + "'";

/** curl command for a POST of `body` to `url`; binary answers go to `out`. */
export function curlCommand(url, body, { withToken = false, out = null } = {}) {
  const parts = [`curl -sS ${quote(url)}`, `-H 'Content-Type: application/json'`];
  if (withToken) parts.push(`-H "Authorization: Bearer $GAN_API_TOKEN"`);
  parts.push(`-d ${quote(toJSON(body))}`);
  if (out) parts.push(`-o ${quote(out)}`);
  return parts.join(" \\\n  ");
}
