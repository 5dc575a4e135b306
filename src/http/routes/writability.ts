// POST /check_writability: prove the timeline takes writes.

import { Type as T } from "@sinclair/typebox";
import { Elysia } from "elysia";
import type { ComputeState } from "../../compute/state.ts";
import { checkWritability } from "../../postgres/writability.ts";
import { HttpError, jsonResponse, requireRunning } from "../app.ts";
import { error, operation, wrongStatus } from "../route-doc.ts";

const POST_CHECK_WRITABILITY_DOC = operation({
  operationId: "checkComputeWritability",
  summary: "Write a row to prove the timeline takes writes.",
  responses: {
    200: { description: "The JSON literal `true`.", json: T.Literal(true) },
    412: wrongStatus,
    500: error("The write failed."),
  },
});

export const writabilityRoutes = (opts: { connstr: URL; state: ComputeState }) =>
  new Elysia({ name: "routes:writability" }).post(
    "/check_writability",
    async () => {
      requireRunning(opts.state);
      try {
        await checkWritability(opts.connstr);
      } catch (err) {
        throw new HttpError(500, err instanceof Error ? err.message : String(err));
      }
      return jsonResponse(200, true);
    },
    { detail: POST_CHECK_WRITABILITY_DOC },
  );
