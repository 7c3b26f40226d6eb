// The API reference at /docs: Swagger UI on this service's /docs.json. No online validator, and
// the framework's remote badge images in the description are shown as their text, so the page
// loads nothing from other hosts.
window.addEventListener("DOMContentLoaded", async () => {
  const res = await fetch(new URL("docs.json", location.href));
  const spec = await res.json();
  if (spec.info && typeof spec.info.description === "string") {
    spec.info.description = spec.info.description.replace(/!\[([^\]]*)\]\([^)]*\)/g, "$1");
  }
  window.ui = window.SwaggerUIBundle({
    spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
