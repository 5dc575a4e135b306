// GET /metrics (Prometheus text, no auth) and GET /metrics.json (startup timings, JWT).
// Both must stay cheap: the control plane's tests hammer them.

import { Elysia } from "elysia";
import { ComputeMetrics } from "../../api/responses.ts";
import type { ComputeState } from "../../compute/state.ts";
import { exposition, type Metrics } from "../../metrics/registry.ts";
import { jsonResponse } from "../app.ts";
import { error, operation } from "../route-doc.ts";

/** The reference's encoder announces exactly this type (no charset parameter). */
const PROMETHEUS_TEXT = "text/plain; version=0.0.4";

const GET_METRICS_DOC = operation({
  operationId: "getComputeMetrics",
  summary: "Prometheus metrics in text format.",
  responses: {
    200: {
      description: "Metrics in the Prometheus text format (`text/plain; version=0.0.4`).",
      content: { type: "text/plain", schema: { type: "string" } },
    },
    500: error("The metrics could not be encoded."),
  },
});

const GET_METRICS_JSON_DOC = operation({
  operationId: "getComputeMetricsJSON",
  summary: "Start-up timings and remote extension figures.",
  responses: { 200: { description: "Timings.", json: ComputeMetrics } },
});

export const prometheusRoutes = (metrics: Metrics) =>
  new Elysia({ name: "routes:metrics" }).get(
    "/metrics",
    async () =>
      new Response(await exposition(metrics.registry), {
        headers: { "content-type": PROMETHEUS_TEXT },
      }),
    { detail: GET_METRICS_DOC },
  );

export const metricsJsonRoutes = (state: ComputeState) =>
  new Elysia({ name: "routes:metrics.json" }).get(
    "/metrics.json",
    () => jsonResponse(200, state.timings),
    { detail: GET_METRICS_JSON_DOC },
  );
