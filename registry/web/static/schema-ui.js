// Starts Swagger UI on /schema with the service's own document. No request leaves the service:
// validatorUrl null keeps Swagger UI from sending the document to its public validator.
window.addEventListener("load", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
