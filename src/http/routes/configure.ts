// POST /configure: a new spec for an empty compute (start it) or a running one (reconfigure).
// Order as the reference: body shape (415/400/422/413), spec validation (400), status (412),
// then wait until the compute is running (200) or failed (500).

import { Elysia } from "elysia";
import { ConfigurationRequest } from "../../api/config.ts";
import { parseJson } from "../../api/decode.ts";
import { parseSpec } from "../../api/parsed-spec.ts";
import { ComputeStatusResponse } from "../../api/responses.ts";
import type { Lifecycle } from "../../compute/lifecycle.ts";
import type { ComputeState } from "../../compute/state.ts";
import { HttpError, invalidStatus, jsonBody, jsonResponse, requestInfo } from "../app.ts";
import { bodyRejections, error, operation, wrongStatus } from "../route-doc.ts";
import { rustDebugString } from "../rust-debug.ts";
import { statusBody } from "./status.ts";

const POST_CONFIGURE_DOC = operation({
  operationId: "configureCompute",
  summary: "Start an empty compute with this spec, or reconfigure a running one.",
  description: "Blocks until the compute is running (200) or failed (500).",
  requestBody: ConfigurationRequest,
  responses: {
    200: { description: "The compute is running.", json: ComputeStatusResponse },
    ...bodyRejections,
    400: error("The body is not valid JSON, or the spec is invalid."),
    412: wrongStatus,
    500: error("The configuration failed."),
  },
});

export const configureRoutes = (
  state: ComputeState,
  lifecycle: Lifecycle,
  privilegedRoleName: string,
) =>
  new Elysia({ name: "routes:configure" }).post(
    "/configure",
    async ({ request }) => {
      const body = await jsonBody(request, (text) => parseJson(ConfigurationRequest, text));
      let pspec: ReturnType<typeof parseSpec>;
      try {
        pspec = parseSpec(body.spec, { privilegedRoleName });
      } catch (err) {
        throw new HttpError(400, err instanceof Error ? err.message : String(err));
      }
      const result = await lifecycle.configure(pspec, requestInfo(request)?.span?.asParent ?? null);
      switch (result.kind) {
        case "invalid-status":
          throw invalidStatus(result.status);
        case "failed":
          throw new HttpError(
            500,
            `compute configuration failed: ${rustDebugString(result.error)}`,
          );
        case "running":
          return jsonResponse(200, statusBody(state));
      }
    },
    { parse: "none", detail: POST_CONFIGURE_DOC },
  );
