// GET /insights: the top 100 pg_stat_statements entries by mean time, other users than
// cloud_admin only. The body is a JSON *string* holding JSON text, as the reference serialises it
// since its axum port (kept for wire compatibility).

import { Type as T } from "@sinclair/typebox";
import { Elysia } from "elysia";
import type { ComputeState } from "../../compute/state.ts";
import { postgresErrorText } from "../../postgres/errors.ts";
import { collectInsights } from "../../postgres/insights.ts";
import { HttpError, jsonResponse, requireRunning } from "../app.ts";
import { error, operation, wrongStatus } from "../route-doc.ts";

const GET_INSIGHTS_DOC = operation({
  operationId: "getComputeInsights",
  summary: "The top pg_stat_statements entries.",
  description:
    'A JSON *string* holding JSON text `{"pg_stat_statements": [...]}`, as the reference sends it.',
  responses: {
    200: { description: "Insights as JSON text.", json: T.String() },
    412: wrongStatus,
    500: error("Postgres could not be reached."),
  },
});

export const insightsRoutes = (opts: { connstr: URL; state: ComputeState }) =>
  new Elysia({ name: "routes:insights" }).get(
    "/insights",
    async () => {
      requireRunning(opts.state);
      let text: string;
      try {
        text = await collectInsights(opts.connstr);
      } catch (err) {
        throw new HttpError(500, postgresErrorText(err));
      }
      return jsonResponse(200, text);
    },
    { detail: GET_INSIGHTS_DOC },
  );
