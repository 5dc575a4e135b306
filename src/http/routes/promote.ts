// POST /promote: promote this Replica to the Primary the body's spec describes.
// The spec is validated first (400, as /configure); then the one promotion of this process runs
// or is joined, and its state is the body: 200 when completed, 500 when failed.

import { Elysia } from "elysia";
import { parseJson } from "../../api/decode.ts";
import { type ParsedSpec, parseSpec } from "../../api/parsed-spec.ts";
import { PromoteConfig, PromoteState, walFlushLsn } from "../../api/promote.ts";
import { type PromoteDeps, promote } from "../../compute/promote.ts";
import { HttpError, jsonBody, jsonResponse } from "../app.ts";
import { bodyRejections, error, operation } from "../route-doc.ts";

const POST_PROMOTE_DOC = operation({
  operationId: "promoteReplica",
  summary: "Promote this replica to primary (once per process; later calls get the result).",
  requestBody: PromoteConfig,
  responses: {
    200: { description: "Promotion completed.", json: PromoteState },
    ...bodyRejections,
    400: error("The body is not valid JSON, or the spec is invalid."),
    500: { description: "Promotion failed.", json: PromoteState },
  },
});

export const promoteRoutes = (deps: PromoteDeps) =>
  new Elysia({ name: "routes:promote" }).post(
    "/promote",
    async ({ request }) => {
      // Body rejections are `{"error"}` JSON here; the reference's plain extractor sends text.
      const body = await jsonBody(request, (text) => parseJson(PromoteConfig, text));
      let pspec: ParsedSpec;
      try {
        pspec = parseSpec(body.spec);
      } catch (err) {
        throw new HttpError(400, err instanceof Error ? err.message : String(err));
      }
      const state = await promote(deps, pspec, walFlushLsn(body));
      return jsonResponse(state.status === "failed" ? 500 : 200, state);
    },
    { parse: "none", detail: POST_PROMOTE_DOC },
  );
