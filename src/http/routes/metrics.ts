// GET /metrics (Prometheus text, no auth) and GET /metrics.json (startup timings, JWT).
// Both must stay cheap: the control plane's tests hammer them.
import { Elysia } from "elysia";
import type { ComputeState } from "../../compute/state.ts";
import { exposition, type Metrics } from "../../metrics/registry.ts";
import { jsonResponse } from "../app.ts";

/** The reference's encoder announces exactly this type (no charset parameter). */
const PROMETHEUS_TEXT = "text/plain; version=0.0.4";

export const prometheusRoutes = (metrics: Metrics) =>
  new Elysia({ name: "routes:metrics" }).get(
    "/metrics",
    async () =>
      new Response(await exposition(metrics.registry), {
        headers: { "content-type": PROMETHEUS_TEXT },
      }),
  );

export const metricsJsonRoutes = (state: ComputeState) =>
  new Elysia({ name: "routes:metrics.json" }).get("/metrics.json", () =>
    jsonResponse(200, state.timings),
  );
