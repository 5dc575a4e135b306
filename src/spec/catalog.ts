// What the planner needs to know about the running Postgres, read in one go over the maintenance
// connection. Queries are pg_catalog-qualified with qualified operators, so a hostile search_path
// could not redirect them even without the forced `search_path=''`.
import type { Sql } from "postgres";
import type { CatalogObjects } from "../api/requests.ts";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { localClient } from "../postgres/client.ts";
import { pool } from "./pool.ts";
import { escapeLiteral } from "./quote.ts";

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

/**
 * What the per-database ChangeSchemaPerms phase would find in one database, read from that
 * database over a connection set up like the one the phase runs on.
 */
export interface PublicSchemaState {
  /** The schema public exists. */
  exists: boolean;
  /** Its owner's name (null when it does not exist). */
  owner: string | null;
  /** The connecting role is a superuser, so a GRANT it runs is recorded as the owner's. */
  superuser: boolean;
  /** server_version_num is at least 150000, where web_access is granted CREATE. */
  webAccessGrantApplies: boolean;
  /** web_access holds CREATE on public, granted by the schema's owner. */
  webAccessCanCreate: boolean;
  /**
   * The connecting role's default privileges in public give the privileged role every table
   * privilege, with grant option.
   */
  defaultTablePrivileges: boolean;
  /** The same for sequences. */
  defaultSequencePrivileges: boolean;
}

export interface CatalogSnapshot {
  roles: Map<string, CatalogRole>;
  databases: Map<string, CatalogDatabase>;
  /** neon.drop_subscriptions_done already holds this timeline (only read when asked). */
  dropSubscriptionsDone: boolean;
  /**
   * The public schema of each database read (only when asked, only for databases open to
   * connections, and not for one whose read failed): the planner leaves out the
   * ChangeSchemaPerms phase of a database where it would change nothing.
   */
  publicSchemas?: Map<string, PublicSchemaState>;
}

export interface PublicSchemaReadOptions {
  connstr: URL;
  privilegedRoleName: string;
  /** Connections open at once. */
  concurrency: number;
  applicationName: string;
  extraOptions?: string;
}

const ROLES_QUERY = "SELECT rolname, rolpassword FROM pg_catalog.pg_authid";

// The owner comes from a lookup by oid, not `datdba::regrole`, which would quote unusual names.
const DATABASES_QUERY = `SELECT d.datname,
  (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) d.datdba) AS owner,
  NOT d.datallowconn AS restrict_conn,
  d.datconnlimit OPERATOR(pg_catalog.=) (OPERATOR(pg_catalog.-) 2) AS invalid
FROM pg_catalog.pg_database d`;

// Run in each database, for the privileged role `priv`, as a simple query (so a server's
// log_statement shows it like every other statement of the apply). CURRENT_USER is the role the apply's
// statements run as (the forced `role` option), whose default privileges they set. A role's
// complete privilege set for an object kind is the owner's entry of acldefault(kind, role).
const publicSchemaQuery = (priv: string) => `WITH me AS (
  SELECT oid, rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER
), priv AS (
  SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) ${escapeLiteral(priv)}::pg_catalog.name
), pub AS (
  SELECT oid, nspowner, nspacl FROM pg_catalog.pg_namespace
  WHERE nspname OPERATOR(pg_catalog.=) 'public'::pg_catalog.name
)
SELECT EXISTS (SELECT FROM pub) AS exists,
  (SELECT r.rolname FROM pub JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) pub.nspowner) AS owner,
  COALESCE((SELECT rolsuper FROM me), false) AS superuser,
  pg_catalog.current_setting('server_version_num')::pg_catalog.int4 OPERATOR(pg_catalog.>=) 150000 AS web_access_grant_applies,
  EXISTS (
    SELECT FROM pub CROSS JOIN LATERAL pg_catalog.aclexplode(pub.nspacl) a
    JOIN pg_catalog.pg_roles w ON w.oid OPERATOR(pg_catalog.=) a.grantee
    WHERE w.rolname OPERATOR(pg_catalog.=) 'web_access'::pg_catalog.name
      AND a.grantor OPERATOR(pg_catalog.=) pub.nspowner
      AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
  ) AS web_access_can_create,
  ${["r", "S"]
    .map(
      (kind) => `EXISTS (SELECT FROM priv) AND EXISTS (SELECT FROM pub) AND NOT EXISTS (
    SELECT FROM priv CROSS JOIN LATERAL pg_catalog.aclexplode(pg_catalog.acldefault('${kind.toLowerCase()}', priv.oid)) need
    WHERE NOT EXISTS (
      SELECT FROM me, pub, pg_catalog.pg_default_acl d CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) have
      WHERE d.defaclrole OPERATOR(pg_catalog.=) me.oid
        AND d.defaclnamespace OPERATOR(pg_catalog.=) pub.oid
        AND d.defaclobjtype OPERATOR(pg_catalog.=) '${kind}'::pg_catalog."char"
        AND have.grantee OPERATOR(pg_catalog.=) priv.oid
        AND have.grantor OPERATOR(pg_catalog.=) me.oid
        AND have.privilege_type OPERATOR(pg_catalog.=) need.privilege_type
        AND have.is_grantable
    )
  ) AS default_${kind === "r" ? "table" : "sequence"}_privileges`,
    )
    .join(",\n  ")}`;

const MARKER_QUERY =
  "SELECT 1 FROM neon.drop_subscriptions_done WHERE timeline_id OPERATOR(pg_catalog.=) $1";

// The simple protocol returns booleans as text unless the client parses them; accept both.
const bool = (v: unknown) => v === true || v === "t";

/**
 * Reads the public schema of each database in `opts.databases` that exists and is open to
 * connections, `opts.concurrency` at a time. A database that cannot be read is left out (its
 * phase then runs, and reports the error if there is one).
 */
export async function readPublicSchemas(
  wanted: string[],
  databases: Map<string, CatalogDatabase>,
  opts: PublicSchemaReadOptions,
): Promise<Map<string, PublicSchemaState>> {
  const out = new Map<string, PublicSchemaState>();
  const names = wanted.filter((name) => {
    const db = databases.get(name);
    return db !== undefined && !db.restrictConn && !db.invalid;
  });
  // A closing connection does not hold a slot; all are closed before this returns.
  const closing: Promise<unknown>[] = [];
  await pool(names, Math.max(1, Math.floor(opts.concurrency)), async (name) => {
    const sql = localClient(opts.connstr, {
      applicationName: opts.applicationName,
      database: name,
      extraOptions: opts.extraOptions,
    });
    try {
      const [row] = await sql.unsafe(publicSchemaQuery(opts.privilegedRoleName)).simple();
      if (!row) return;
      out.set(name, {
        exists: bool(row.exists),
        owner: row.owner ?? null,
        superuser: bool(row.superuser),
        webAccessGrantApplies: bool(row.web_access_grant_applies),
        webAccessCanCreate: bool(row.web_access_can_create),
        defaultTablePrivileges: bool(row.default_table_privileges),
        defaultSequencePrivileges: bool(row.default_sequence_privileges),
      });
    } catch (err) {
      log.debug(`cannot read the public schema of database ${name}: ${formatOneLine(err)}`);
    } finally {
      closing.push(sql.end({ timeout: 5 }).catch(() => {}));
    }
  });
  await Promise.all(closing);
  return out;
}

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
