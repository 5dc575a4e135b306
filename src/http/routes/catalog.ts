// GET /dbs_and_roles and GET /database_schema?database=: what the local Postgres holds, read from
// its catalogs, and a schema-only pg_dump of one database, streamed. Neither is gated on the
// compute status; both fail when Postgres cannot be reached.

import { Elysia } from "elysia";
import { CatalogObjects } from "../../api/requests.ts";
import { postgresErrorText } from "../../postgres/errors.ts";
import { DUMP_FAILED, DUMP_UNEXPECTED, dumpSchema } from "../../postgres/schema-dump.ts";
import { listDbsAndRoles } from "../../spec/catalog.ts";
import { HttpError, jsonResponse, RejectionError } from "../app.ts";
import { error, operation } from "../route-doc.ts";

/** `?database=NAME` as serde_urlencoded reads it: required, once. */
const GET_DBS_AND_ROLES_DOC = operation({
  operationId: "getDbsAndRoles",
  summary: "Every role and database in the catalog.",
  responses: {
    200: { description: "Roles and databases.", json: CatalogObjects },
    500: error("Postgres could not be reached."),
  },
});

const GET_DATABASE_SCHEMA_DOC = operation({
  operationId: "getDatabaseSchema",
  summary: "A schema-only pg_dump of one database, streamed.",
  parameters: [{ name: "database", in: "query", required: true, schema: { type: "string" } }],
  responses: {
    200: {
      description: "SQL text; labelled application/json, as the reference labels it.",
      content: { type: "application/json", schema: { type: "string" } },
    },
    400: error("`database` is missing or repeated."),
    404: error("The database does not exist."),
    500: error("pg_dump failed."),
  },
});

export function databaseParam(url: string): string {
  const q = url.indexOf("?");
  const values = q === -1 ? [] : new URLSearchParams(url.slice(q + 1)).getAll("database");
  if (values.length === 0) {
    throw new RejectionError(400, "failed to deserialize query string: missing field `database`");
  }
  if (values.length > 1) {
    throw new RejectionError(400, "failed to deserialize query string: duplicate field `database`");
  }
  return values[0]!;
}

/** The dump as the answer: its stream, or the reference's status and text for each failure. */
export async function schemaDumpResponse(
  pgDump: string,
  connstr: URL,
  dbname: string,
): Promise<Response> {
  const dump = await dumpSchema(pgDump, connstr, dbname);
  switch (dump.kind) {
    case "no-database":
      throw new HttpError(404, "database does not exist");
    case "failed":
      throw new HttpError(500, DUMP_FAILED);
    case "unexpected":
      throw new HttpError(500, DUMP_UNEXPECTED);
  }
  // application/json is the reference's header for this SQL text (a quirk kept for clients).
  return new Response(dump.body, { status: 200, headers: { "content-type": "application/json" } });
}

export const catalogRoutes = (opts: { connstr: URL; pgDump: string }) =>
  new Elysia({ name: "routes:catalog" })
    .get(
      "/dbs_and_roles",
      async () => {
        try {
          return jsonResponse(200, await listDbsAndRoles(opts.connstr));
        } catch (err) {
          throw new HttpError(500, postgresErrorText(err));
        }
      },
      { detail: GET_DBS_AND_ROLES_DOC },
    )
    .get(
      "/database_schema",
      ({ request }) => schemaDumpResponse(opts.pgDump, opts.connstr, databaseParam(request.url)),
      { detail: GET_DATABASE_SCHEMA_DOC },
    );
