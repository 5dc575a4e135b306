// GET /status: the compute's status, in the reference's field order, nulls kept.

import { Elysia } from "elysia";
import { ComputeStatusResponse } from "../../api/responses.ts";
import type { ComputeStatus } from "../../api/status.ts";
import { rfc3339Offset, rfc3339Z } from "../../api/time.ts";
import type { ComputeState } from "../../compute/state.ts";
import { plain } from "../app.ts";
import { operation } from "../route-doc.ts";

const GET_STATUS_DOC = operation({
  operationId: "getComputeStatus",
  summary: "The compute's status.",
  responses: { 200: { description: "Status.", json: ComputeStatusResponse } },
});

export function statusBody(state: ComputeState): ComputeStatusResponse {
  return {
    start_time: rfc3339Z(state.startTimeMicros),
    tenant: state.tenant,
    timeline: state.timeline,
    status: state.status,
    last_active: state.lastActiveMicros === null ? null : rfc3339Offset(state.lastActiveMicros),
    error: state.error,
  };
}

/**
 * GET /status's handler. The body is encoded again only when a field it shows changed since the
 * last request (compared field by field, so no change can be missed).
 */
export function statusHandler(state: ComputeState) {
  let startTime = Number.NaN;
  let tenant: string | null = null;
  let timeline: string | null = null;
  let status: ComputeStatus | null = null;
  let lastActive: number | null = null;
  let error: string | null = null;
  let json = "";
  return plain(() => {
    if (
      state.status !== status ||
      state.lastActiveMicros !== lastActive ||
      state.error !== error ||
      state.startTimeMicros !== startTime ||
      state.tenant !== tenant ||
      state.timeline !== timeline
    ) {
      status = state.status;
      lastActive = state.lastActiveMicros;
      error = state.error;
      startTime = state.startTimeMicros;
      tenant = state.tenant;
      timeline = state.timeline;
      json = JSON.stringify(statusBody(state));
    }
    return { status: 200, body: json, contentType: "application/json" };
  });
}

export const statusRoutes = (state: ComputeState) =>
  new Elysia({ name: "routes:status" }).get("/status", statusHandler(state), {
    detail: GET_STATUS_DOC,
  });
