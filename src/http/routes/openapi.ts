// GET /openapi.json: the API description built by ../openapi.ts from the routes the servers
// register.
//
// No token, on either server: mount it on the external app OUTSIDE the JWT guard (beside
// /metrics) and on the internal app. The document holds no secrets and no state, only what the
// reference already publishes in its repository (openapi_spec.yaml); asking for a JWT would make
// tooling hold a control-plane-signed token just to read a schema. The reference has no such
// route, so this is an addition (listed in the OpenAPI test's allow-list).
import { Elysia } from "elysia";
import { operation } from "../route-doc.ts";

/**
 * `doc` is the document, or a function giving it (called on the first request: the document is
 * generated from the registered routes, this one included). Serialised once: it never changes
 * while the process runs.
 */
export const openapiRoutes = (
  doc: object | (() => Promise<object>),
  server: "external" | "internal" = "external",
) => {
  const respond = (text: string) =>
    new Response(text, { headers: { "content-type": "application/json" } });
  let text: string | undefined = typeof doc === "function" ? undefined : JSON.stringify(doc);
  let pending: Promise<string> | undefined;
  const serialise = async () => {
    text = JSON.stringify(await (doc as () => Promise<object>)());
    return text;
  };
  return new Elysia({ name: `routes:openapi:${server}` }).get(
    "/openapi.json",
    // Synchronous once the text exists; only the first request waits for the document.
    () => {
      if (text !== undefined) return respond(text);
      pending ??= serialise();
      return pending.then(respond);
    },
    {
      detail: operation({
        operationId: `getOpenApiDocument${server === "external" ? "" : "Internal"}`,
        summary: "This document.",
        responses: {
          200: {
            description: "The OpenAPI document.",
            content: { type: "application/json", schema: { type: "object" } },
          },
        },
      }),
    },
  );
};
