// GET /status: the compute's status, in the reference's field order, nulls kept.

import { Elysia } from "elysia";
import { ComputeStatusResponse } from "../../api/responses.ts";
import { rfc3339Offset, rfc3339Z } from "../../api/time.ts";
import type { ComputeState } from "../../compute/state.ts";
import { jsonResponse } from "../app.ts";
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

export const statusRoutes = (state: ComputeState) =>
  new Elysia({ name: "routes:status" }).get("/status", () => jsonResponse(200, statusBody(state)), {
    detail: GET_STATUS_DOC,
  });
