// POST /failpoints (internal): configure failpoints at run time. Only works when
// the testing switch enabled failpoints; otherwise 412 with the reference's text.

import { Elysia } from "elysia";
import { parseJson } from "../../api/decode.ts";
import { ConfigureFailpointsRequest } from "../../api/requests.ts";
import { configureFailpoints, failpointsEnabled } from "../../failpoints.ts";
import { HttpError, jsonBody } from "../app.ts";
import { bodyRejections, empty, error, operation } from "../route-doc.ts";

const POST_FAILPOINTS_DOC = operation({
  operationId: "configureFailpoints",
  summary: "Configure failpoints (only with COMPUTE_CTL_TESTING=1).",
  requestBody: ConfigureFailpointsRequest,
  responses: {
    200: empty("Configured (empty body)."),
    ...bodyRejections,
    400: error("The body is not valid JSON, or a failpoint could not be configured."),
    412: error("Failpoints are not enabled."),
  },
});

export const failpointsRoutes = () =>
  new Elysia({ name: "routes:failpoints" }).post(
    "/failpoints",
    async ({ request }) => {
      // The body is read first: the reference's extractor rejects a bad body before the handler.
      const body = await jsonBody(request, (text) => parseJson(ConfigureFailpointsRequest, text));
      if (!failpointsEnabled()) {
        throw new HttpError(
          412,
          "Cannot manage failpoints because neon was compiled without failpoints support",
        );
      }
      try {
        configureFailpoints(body);
      } catch (err) {
        // Already `failed to configure failpoints: …`.
        throw new HttpError(400, err instanceof Error ? err.message : String(err));
      }
      return new Response(null, { status: 200 });
    },
    { parse: "none", detail: POST_FAILPOINTS_DOC },
  );
