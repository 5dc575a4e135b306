// POST /grants (internal): grant privileges on a schema to a role in a database.
import { Elysia } from "elysia";
import { parseJson } from "../../api/decode.ts";
import { SetRoleGrantsRequest } from "../../api/requests.ts";
import type { ComputeState } from "../../compute/state.ts";
import { setRoleGrants } from "../../postgres/grants.ts";
import { HttpError, jsonBody, jsonResponse, requireRunning } from "../app.ts";

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
    { parse: "none" },
  );
