// GET /autoscaling_metrics (external, no auth): relay `GET /autoscaling_metrics` to the neon
// communicator's HTTP server on the unix socket in PGDATA, passing back its status, content type
// and body. On vanilla Postgres there is no socket, so this answers 500.
import { Elysia } from "elysia";
import { fetchAutoscalingMetrics } from "../../postgres/communicator.ts";
import { HttpError } from "../app.ts";

export const autoscalingMetricsRoutes = (opts: { pgdata: string }) =>
  new Elysia({ name: "routes:autoscaling-metrics" }).get("/autoscaling_metrics", async () => {
    try {
      return await fetchAutoscalingMetrics(opts.pgdata);
    } catch (err) {
      throw new HttpError(500, err instanceof Error ? err.message : String(err));
    }
  });
