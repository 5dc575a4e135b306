// GET /openapi.json: the API description built by ../openapi.ts.
//
// No token, on either server: mount it on the external app OUTSIDE the JWT guard (beside
// /metrics) and on the internal app. The document holds no secrets and no state, only what the
// reference already publishes in its repository (openapi_spec.yaml); asking for a JWT would make
// tooling hold a control-plane-signed token just to read a schema. The reference has no such
// route, so this is an addition (listed in the OpenAPI test's allow-list).
import { Elysia } from "elysia";

export const openapiRoutes = (doc: object) => {
  // Serialised once: the document never changes while the process runs.
  const text = JSON.stringify(doc);
  return new Elysia({ name: "routes:openapi" }).get(
    "/openapi.json",
    () => new Response(text, { headers: { "content-type": "application/json" } }),
  );
};
