// POST /terminate[?mode=fast|immediate]: stop Postgres and report the last flushed LSN. In
// lakebase mode an Empty compute answers 200 with no body and the process exits 0 in 5 s.

import { Elysia } from "elysia";
import { TerminateResponse } from "../../api/responses.ts";
import type { Lifecycle, TerminateMode } from "../../compute/lifecycle.ts";
import { HttpError, invalidStatus, jsonResponse, RejectionError } from "../app.ts";
import { error, operation, wrongStatus } from "../route-doc.ts";

/**
 * The reference's optional query: no query string at all means `fast`; a query string without
 * `mode` is an error. Rejections are JSON here (the reference answers text/plain).
 */
const POST_TERMINATE_DOC = operation({
  operationId: "terminate",
  summary: "Stop Postgres and report the last flushed LSN.",
  parameters: [
    {
      name: "mode",
      in: "query",
      required: false,
      description: "Required when there is a query string at all.",
      schema: { type: "string", enum: ["fast", "immediate"], default: "fast" },
    },
  ],
  responses: {
    200: {
      description:
        "Terminated. In lakebase mode an Empty compute answers 200 with an empty body instead and the process exits 0 five seconds later.",
      json: TerminateResponse,
    },
    201: { description: "Was already terminated.", json: TerminateResponse },
    400: error("Bad `mode`."),
    412: wrongStatus,
    500: error("The shutdown failed."),
  },
});

export function terminateMode(url: string): TerminateMode {
  const q = url.indexOf("?");
  if (q === -1) return "fast";
  const mode = new URLSearchParams(url.slice(q + 1)).get("mode");
  if (mode === null) {
    throw new RejectionError(400, "failed to deserialize query string: missing field `mode`");
  }
  if (mode !== "fast" && mode !== "immediate") {
    throw new RejectionError(
      400,
      `failed to deserialize query string: mode: unknown variant \`${mode}\`, expected \`fast\` or \`immediate\``,
    );
  }
  return mode;
}

export const terminateRoutes = (lifecycle: Lifecycle) =>
  new Elysia({ name: "routes:terminate" }).post(
    "/terminate",
    async ({ request }) => {
      const result = await lifecycle.terminate(terminateMode(request.url));
      switch (result.kind) {
        case "invalid-status":
          throw invalidStatus(result.status);
        case "failed":
          throw new HttpError(500, result.error);
        case "already-terminated":
          return jsonResponse(201, { lsn: result.lsn });
        case "terminated":
          return jsonResponse(200, { lsn: result.lsn });
        case "exiting":
          // Lakebase mode, an Empty compute: the reference answers 200 with no body.
          return new Response(null, { status: 200 });
      }
    },
    { detail: POST_TERMINATE_DOC },
  );
