// What the planner needs to know about the running Postgres, read in one go over the maintenance
// connection. Queries are pg_catalog-qualified with qualified operators, so a hostile search_path
// could not redirect them even without the forced `search_path=''`.
import type { Sql } from "postgres";
import type { CatalogObjects } from "../api/requests.ts";
import { localClient } from "../postgres/client.ts";

export interface CatalogRole {
  name: string;
  /** pg_authid.rolpassword as stored: `md5…`, `SCRAM-SHA-256$…` or null. */
  password: string | null;
}

export interface CatalogDatabase {
  name: string;
  owner: string;
  /** NOT datallowconn (template0, or a database closed to connections). */
  restrictConn: boolean;
  /** datconnlimit = -2: left behind by an interrupted DROP DATABASE. */
  invalid: boolean;
}

export interface CatalogSnapshot {
  roles: Map<string, CatalogRole>;
  databases: Map<string, CatalogDatabase>;
  /** neon.drop_subscriptions_done already holds this timeline (only read when asked). */
  dropSubscriptionsDone: boolean;
}

const ROLES_QUERY = "SELECT rolname, rolpassword FROM pg_catalog.pg_authid";

// The owner comes from a lookup by oid, not `datdba::regrole`, which would quote unusual names.
const DATABASES_QUERY = `SELECT d.datname,
  (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) d.datdba) AS owner,
  NOT d.datallowconn AS restrict_conn,
  d.datconnlimit OPERATOR(pg_catalog.=) (OPERATOR(pg_catalog.-) 2) AS invalid
FROM pg_catalog.pg_database d`;

const MARKER_QUERY =
  "SELECT 1 FROM neon.drop_subscriptions_done WHERE timeline_id OPERATOR(pg_catalog.=) $1";

// The simple protocol returns booleans as text unless the client parses them; accept both.
const bool = (v: unknown) => v === true || v === "t";

/**
 * Reads roles and databases; with `markerTimelineId`, also whether subscriptions were already
 * dropped for that timeline (a missing marker table or schema means "not yet").
 */
export async function readCatalog(
  sql: Sql,
  opts: { markerTimelineId?: string | null } = {},
): Promise<CatalogSnapshot> {
  const [roleRows, dbRows] = await Promise.all([
    sql.unsafe(ROLES_QUERY).simple(),
    sql.unsafe(DATABASES_QUERY).simple(),
  ]);
  const roles = new Map<string, CatalogRole>();
  for (const r of roleRows) {
    roles.set(r.rolname, { name: r.rolname, password: r.rolpassword ?? null });
  }
  const databases = new Map<string, CatalogDatabase>();
  for (const d of dbRows) {
    databases.set(d.datname, {
      name: d.datname,
      owner: d.owner,
      restrictConn: bool(d.restrict_conn),
      invalid: bool(d.invalid),
    });
  }
  let dropSubscriptionsDone = false;
  if (opts.markerTimelineId != null) {
    try {
      const rows = await sql.unsafe(MARKER_QUERY, [opts.markerTimelineId]);
      dropSubscriptionsDone = rows.length > 0;
    } catch (err) {
      if ((err as { code?: string }).code !== "42P01") {
        throw new Error("cannot check whether subscriptions were already dropped", { cause: err });
      }
    }
  }
  return { roles, databases, dropSubscriptionsDone };
}

/**
 * GET /dbs_and_roles: every role of pg_authid (built-ins included) and every database, in catalog
 * order, read with the same queries as the planner's snapshot.
 */
export async function listDbsAndRoles(connstr: URL): Promise<CatalogObjects> {
  const sql = localClient(connstr, { applicationName: "compute_ctl:get_dbs_and_roles" });
  try {
    const { roles, databases } = await readCatalog(sql);
    return {
      roles: [...roles.values()].map((r) => ({
        name: r.name,
        encrypted_password: r.password,
        options: null,
      })),
      databases: [...databases.values()].map((d) => ({
        name: d.name,
        owner: d.owner,
        options: null,
        restrict_conn: d.restrictConn,
        invalid: d.invalid,
      })),
    };
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
