// /docs: Swagger UI from jsDelivr (the assets FastAPI's default /docs loads). When the CDN cannot be reached
// (offline, a firewall) the page lists the endpoints from /openapi.json itself instead of staying blank.
"use strict";

const CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/";
const CDN_TIMEOUT_MS = 8000;
let settled = false;

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

async function offline(why) {
  if (settled) return;
  settled = true;
  document.getElementById("offline").hidden = false;
  document.getElementById("offline-why").textContent =
    `Swagger UI could not be loaded from ${CDN} (${why}); the endpoints below come from /openapi.json.`;
  const list = document.getElementById("endpoints");
  try {
    const spec = await (await fetch("/openapi.json")).json();
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const section = element("section", "", "panel");
        section.append(element("h2", `${method.toUpperCase()} ${path}`));
        section.append(element("p", operation.description || operation.summary || ""));
        const body = ((operation.requestBody || {}).content || {})["application/json"];
        for (const [name, example] of Object.entries((body && body.examples) || {})) {
          section.append(element("p", name, "meta"), element("pre", JSON.stringify(example.value)));
        }
        list.append(section);
      }
    }
    document.body.dataset.docs = "offline";
  } catch (error) {
    list.append(element("p", `/openapi.json could not be read: ${error}`));
    document.body.dataset.docs = "error";
  }
}

function swagger() {
  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = CDN + "swagger-ui.css";
  document.head.append(style);
  const script = document.createElement("script");
  script.src = CDN + "swagger-ui-bundle.js";
  const timer = setTimeout(() => offline(`no answer in ${CDN_TIMEOUT_MS / 1000} s`), CDN_TIMEOUT_MS);
  script.onerror = () => {
    clearTimeout(timer);
    offline("the request failed");
  };
  script.onload = () => {
    clearTimeout(timer);
    if (settled || typeof SwaggerUIBundle === "undefined") return offline("the script did not define Swagger UI");
    settled = true;
    SwaggerUIBundle({
      url: "/openapi.json", dom_id: "#swagger-ui", layout: "BaseLayout", deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    });
    document.body.dataset.docs = "swagger";
  };
  document.head.append(script);
}

swagger();
