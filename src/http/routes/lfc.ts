// GET/POST/DELETE /lfc/prewarm and GET/POST /lfc/offload: start, cancel and report
// the LFC prewarm and offload runs. Starts and cancels answer 202 with an empty body.
import { Elysia } from "elysia";
import type { LfcManager } from "../../lfc/manager.ts";
import { HttpError, jsonResponse, RejectionError } from "../app.ts";

/**
 * The reference's OptionalQuery: no query string at all means "own endpoint"; a query string
 * without `from_endpoint` is a 400. Rejections are JSON here (the reference answers text/plain).
 */
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
    .get("/lfc/prewarm", () => jsonResponse(200, lfc.prewarmState()))
    .post("/lfc/prewarm", ({ request }) => {
      if (lfc.prewarm(prewarmFromEndpoint(request.url)) === "already-running") {
        throw new HttpError(429, "Multiple requests for prewarm are not allowed");
      }
      return accepted();
    })
    .delete("/lfc/prewarm", () => {
      lfc.cancelPrewarm();
      return accepted();
    })
    .get("/lfc/offload", () => jsonResponse(200, lfc.offloadState()))
    .post("/lfc/offload", () => {
      if (lfc.offload() === "already-running") {
        throw new HttpError(429, "Multiple requests for prewarm offload are not allowed");
      }
      return accepted();
    });
