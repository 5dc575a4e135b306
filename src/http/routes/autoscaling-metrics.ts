// GET /autoscaling_metrics (external, no auth): relay `GET /autoscaling_metrics` to the neon
// communicator's HTTP server on the unix socket in PGDATA, passing back its status, content type
// and body. On vanilla Postgres there is no socket, so this answers 500.

import { Elysia } from "elysia";
import { fetchAutoscalingMetrics } from "../../postgres/communicator.ts";
import { HttpError } from "../app.ts";
import { error, operation } from "../route-doc.ts";

const GET_AUTOSCALING_METRICS_DOC = operation({
  operationId: "getAutoscalingMetrics",
  summary: "The neon communicator's autoscaling metrics, relayed from its socket in PGDATA.",
  description: "Status, content type and body are the communicator's.",
  responses: {
    200: {
      description: "The communicator's answer.",
      content: { type: "text/plain", schema: { type: "string" } },
    },
    500: error("The communicator socket could not be reached."),
  },
});

export const autoscalingMetricsRoutes = (opts: { pgdata: string }) =>
  new Elysia({ name: "routes:autoscaling-metrics" }).get(
    "/autoscaling_metrics",
    async () => {
      try {
        return await fetchAutoscalingMetrics(opts.pgdata);
      } catch (err) {
        throw new HttpError(500, err instanceof Error ? err.message : String(err));
      }
    },
    { detail: GET_AUTOSCALING_METRICS_DOC },
  );
