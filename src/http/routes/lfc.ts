// GET/POST/DELETE /lfc/prewarm and GET/POST /lfc/offload: start, cancel and report
// the LFC prewarm and offload runs. Starts and cancels answer 202 with an empty body.

import { Elysia } from "elysia";
import { LfcOffloadStateSchema, LfcPrewarmStateSchema } from "../../api/lfc.ts";
import type { LfcManager } from "../../lfc/manager.ts";
import { HttpError, jsonResponse, RejectionError } from "../app.ts";
import { empty, error, operation } from "../route-doc.ts";

/**
 * The reference's OptionalQuery: no query string at all means "own endpoint"; a query string
 * without `from_endpoint` is a 400. Rejections are JSON here (the reference answers text/plain).
 */
const GET_LFC_PREWARM_DOC = operation({
  operationId: "getLfcPrewarmState",
  summary: "The LFC prewarm state.",
  responses: { 200: { description: "Prewarm state.", json: LfcPrewarmStateSchema } },
});

const POST_LFC_PREWARM_DOC = operation({
  operationId: "lfcPrewarm",
  summary: "Start an LFC prewarm.",
  parameters: [
    {
      name: "from_endpoint",
      in: "query",
      required: false,
      description: "Required when there is a query string at all.",
      schema: { type: "string" },
    },
  ],
  responses: {
    202: empty("Started (empty body)."),
    400: error("A query string without `from_endpoint`."),
    429: error("A prewarm is running."),
  },
});

const DELETE_LFC_PREWARM_DOC = operation({
  operationId: "cancelLfcPrewarm",
  summary: "Cancel a running LFC prewarm.",
  responses: { 202: empty("Cancelled, or nothing to cancel (empty body).") },
});

const GET_LFC_OFFLOAD_DOC = operation({
  operationId: "getLfcOffloadState",
  summary: "The LFC offload state.",
  responses: { 200: { description: "Offload state.", json: LfcOffloadStateSchema } },
});

const POST_LFC_OFFLOAD_DOC = operation({
  operationId: "lfcOffload",
  summary: "Start an LFC offload.",
  responses: {
    202: empty("Started (empty body)."),
    429: error("An offload is running."),
  },
});

export function prewarmFromEndpoint(url: string): string | undefined {
  const q = url.indexOf("?");
  if (q === -1) return undefined;
  const from = new URLSearchParams(url.slice(q + 1)).get("from_endpoint");
  if (from === null) {
    throw new RejectionError(
      400,
      "failed to deserialize query string: missing field `from_endpoint`",
    );
  }
  return from;
}

const accepted = () => new Response(null, { status: 202 });

export const lfcRoutes = (lfc: LfcManager) =>
  new Elysia({ name: "routes:lfc" })
    .get("/lfc/prewarm", () => jsonResponse(200, lfc.prewarmState()), {
      detail: GET_LFC_PREWARM_DOC,
    })
    .post(
      "/lfc/prewarm",
      ({ request }) => {
        if (lfc.prewarm(prewarmFromEndpoint(request.url)) === "already-running") {
          throw new HttpError(429, "Multiple requests for prewarm are not allowed");
        }
        return accepted();
      },
      { detail: POST_LFC_PREWARM_DOC },
    )
    .delete(
      "/lfc/prewarm",
      () => {
        lfc.cancelPrewarm();
        return accepted();
      },
      { detail: DELETE_LFC_PREWARM_DOC },
    )
    .get("/lfc/offload", () => jsonResponse(200, lfc.offloadState()), {
      detail: GET_LFC_OFFLOAD_DOC,
    })
    .post(
      "/lfc/offload",
      () => {
        if (lfc.offload() === "already-running") {
          throw new HttpError(429, "Multiple requests for prewarm offload are not allowed");
        }
        return accepted();
      },
      { detail: POST_LFC_OFFLOAD_DOC },
    );
