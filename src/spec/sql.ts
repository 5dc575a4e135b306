// The statement texts of spec application. Every catalog reference is pg_catalog-qualified and
// comparisons use OPERATOR(pg_catalog.…), so objects planted in a user's search_path cannot
// change what runs. Values that PL/pgSQL needs arrive dollar-quoted (pgQuoteDollar) and reach
// dynamic SQL only through format('%I').

import type { Role } from "../api/spec.ts";
import { isPrivilegedRoleName } from "../config/role-name.ts";
import { escapeLiteral, pgQuote, pgQuoteDollar, roleOptions } from "./quote.ts";

/** `--privileged-role-name` passes isPrivilegedRoleName, so it is written bare, as the reference does. */
export function assertPrivilegedRoleName(name: string): void {
  if (!isPrivilegedRoleName(name)) {
    throw new Error(`invalid privileged role name '${name}': only lowercase letters and '_'`);
  }
}

/** Lakebase mode creates the privileged role without REPLICATION. */
export function createPrivilegedRole(priv: string, lakebase = false): string {
  const attrs = lakebase
    ? "CREATEDB CREATEROLE NOLOGIN BYPASSRLS"
    : "CREATEDB CREATEROLE NOLOGIN REPLICATION BYPASSRLS";
  return `DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) '${priv}'::pg_catalog.name) THEN
    CREATE ROLE ${priv} ${attrs} IN ROLE pg_read_all_data, pg_write_all_data;
  END IF;
END
$$`;
}

/** Clears datistemplate when the database exists, so DROP DATABASE can follow (and be retried). */
export function unsetTemplate(dbname: string): string {
  const { quoted, outerTag } = pgQuoteDollar(dbname);
  return `DO $${outerTag}$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) ${quoted}::pg_catalog.name) THEN
    EXECUTE pg_catalog.format('ALTER DATABASE %I is_template false', ${quoted});
  END IF;
END
$${outerTag}$`;
}

/**
 * Detaches and drops every subscription of `dbname` (run while connected to it). The slot is
 * set to NONE first so the publisher's slot, which belongs to the parent branch, is left alone.
 */
export function dropSubscriptions(dbname: string): string {
  const { quoted, outerTag } = pgQuoteDollar(dbname);
  return `DO $${outerTag}$
DECLARE
  sub pg_catalog.name;
BEGIN
  LOCK TABLE pg_catalog.pg_subscription IN ACCESS EXCLUSIVE MODE;
  FOR sub IN
    SELECT s.subname FROM pg_catalog.pg_subscription s
    JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.subdbid
    WHERE d.datname OPERATOR(pg_catalog.=) ${quoted}::pg_catalog.name
  LOOP
    EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I DISABLE', sub);
    EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', sub);
    EXECUTE pg_catalog.format('DROP SUBSCRIPTION %I', sub);
  END LOOP;
END
$${outerTag}$`;
}

/**
 * Revokes the table privileges `role` holds in schema public, each as the role that granted it:
 * privileges granted by someone else (e.g. the privileged role) survive DROP OWNED and would
 * block DROP ROLE (cloud#13582). Each privilege is revoked by name, on its table, because a
 * grantor that inherits more grant options than it holds would otherwise be passed over by
 * Postgres's choice of grantor for REVOKE ALL.
 */
export function revokeTablePrivileges(role: string): string {
  const { quoted, outerTag } = pgQuoteDollar(role);
  return `DO $${outerTag}$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT gr.rolname AS grantor, c.oid::pg_catalog.regclass::pg_catalog.text AS rel, a.privilege_type AS priv
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
    JOIN pg_catalog.pg_roles gr ON gr.oid OPERATOR(pg_catalog.=) a.grantor
    JOIN pg_catalog.pg_roles ge ON ge.oid OPERATOR(pg_catalog.=) a.grantee
    WHERE n.nspname OPERATOR(pg_catalog.=) 'public'::pg_catalog.name
      AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'f']::pg_catalog."char"[])
      AND ge.rolname OPERATOR(pg_catalog.=) ${quoted}::pg_catalog.name
      AND a.grantor OPERATOR(pg_catalog.<>) c.relowner
    ORDER BY 1
  LOOP
    -- Catalog rows are visible to every role, so switching roles does not change the loop's rows.
    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', g.grantor);
    EXECUTE pg_catalog.format('REVOKE %s ON TABLE %s FROM %I', g.priv, g.rel, ${quoted});
  END LOOP;
END
$${outerTag}$`;
}

/** Hands a public schema still owned by the admin roles (PG14-era layout) to the DB's owner. */
export function setPublicSchemaOwner(owner: string): string {
  const { quoted, outerTag } = pgQuoteDollar(owner);
  return `DO $${outerTag}$
DECLARE
  current_owner pg_catalog.name;
BEGIN
  SELECT r.rolname INTO current_owner
  FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
  WHERE n.nspname OPERATOR(pg_catalog.=) 'public'::pg_catalog.name;
  IF current_owner OPERATOR(pg_catalog.=) ANY (ARRAY['cloud_admin', 'zenith_admin']::pg_catalog.name[]) THEN
    EXECUTE pg_catalog.format('ALTER SCHEMA public OWNER TO %I', ${quoted});
  END IF;
END
$${outerTag}$`;
}

/**
 * Objects compute_ctl's own role creates later in public are granted to the privileged role with
 * grant option (no FOR ROLE: it covers the connecting role only); web_access may create there.
 */
export function defaultGrants(priv: string): string {
  return `DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) 'public'::pg_catalog.name) THEN
    RETURN;
  END IF;
  IF pg_catalog.current_setting('server_version_num')::pg_catalog.int4 OPERATOR(pg_catalog.>=) 150000
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'web_access'::pg_catalog.name) THEN
    GRANT CREATE ON SCHEMA public TO web_access;
  END IF;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO ${priv} WITH GRANT OPTION;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO ${priv} WITH GRANT OPTION;
END
$$`;
}

export const CREATE_SCHEMA_NEON = "CREATE SCHEMA IF NOT EXISTS neon";

export const NEON_EXTENSION: readonly { sql: string; comment: string }[] = [
  { sql: "CREATE EXTENSION IF NOT EXISTS neon WITH SCHEMA neon", comment: "install neon" },
  {
    // Old images installed it non-relocatable or elsewhere; SET SCHEMA needs it relocatable.
    sql: "UPDATE pg_catalog.pg_extension SET extrelocatable = true WHERE extname OPERATOR(pg_catalog.=) 'neon'::pg_catalog.name AND extrelocatable OPERATOR(pg_catalog.=) false",
    comment: "make neon relocatable",
  },
  { sql: "ALTER EXTENSION neon SET SCHEMA neon", comment: "move neon to schema neon" },
  { sql: "ALTER EXTENSION neon UPDATE", comment: "update neon" },
];

export const CREATE_PG_STAT_STATEMENTS =
  "CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public";

/** The row /check_writability later upserts; created once, in the system database only. */
export const HEALTH_CHECK = `DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname OPERATOR(pg_catalog.=) 'public'::pg_catalog.name AND tablename OPERATOR(pg_catalog.=) 'health_check'::pg_catalog.name) THEN
    CREATE TABLE public.health_check (
      id pg_catalog.int4 PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
      updated_at pg_catalog.timestamptz DEFAULT pg_catalog.now()
    );
    INSERT INTO public.health_check VALUES (1, pg_catalog.now())
      ON CONFLICT (id) DO UPDATE SET updated_at = pg_catalog.now();
  END IF;
END
$$`;

/**
 * Records that subscriptions were dropped for this timeline. One row, overwritten by a branch of
 * a branch. The id written is the one the marker check read (the reference writes the
 * neon.timeline_id setting, which is the same value whenever the spec and the conf agree).
 */
export function finalizeDropSubscriptions(timelineId: string): string {
  const tl = escapeLiteral(timelineId);
  return `DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname OPERATOR(pg_catalog.=) 'neon'::pg_catalog.name AND tablename OPERATOR(pg_catalog.=) 'drop_subscriptions_done'::pg_catalog.name) THEN
    CREATE TABLE neon.drop_subscriptions_done (
      id pg_catalog.int4 PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
      timeline_id pg_catalog.text
    );
  END IF;
  INSERT INTO neon.drop_subscriptions_done VALUES (1, ${tl})
    ON CONFLICT (id) DO UPDATE SET timeline_id = EXCLUDED.timeline_id;
END
$$`;
}

export const AUDIT = {
  pgaudit: "CREATE EXTENSION IF NOT EXISTS pgaudit WITH SCHEMA public",
  pgauditlogtofile: "CREATE EXTENSION IF NOT EXISTS pgauditlogtofile WITH SCHEMA public",
  // The system database is busy with monitoring queries and holds no user data.
  quietSystemDb: "ALTER DATABASE postgres SET pgaudit.log TO 'none'",
};

// Lakebase (Databricks) objects. The roles authenticate through databricks_pg_hba.conf, so they
// have no password; each is created only when missing and never altered afterwards.
const DATABRICKS_ROLES: Role[] = [
  // The metrics exporter.
  {
    name: "databricks_monitor",
    encrypted_password: null,
    options: [{ name: "IN ROLE pg_monitor", value: null, vartype: "string" }],
  },
  // The Databricks control plane (certificate login).
  {
    name: "databricks_control_plane",
    encrypted_password: null,
    options: [{ name: "SUPERUSER", value: null, vartype: "string" }],
  },
  // The HTTP gateway (certificate login).
  { name: "databricks_gateway", encrypted_password: null, options: null },
];

export function createDatabricksRoles(): string[] {
  return DATABRICKS_ROLES.map(
    (role) => `DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) '${role.name}'::pg_catalog.name) THEN
    CREATE ROLE ${pgQuote(role.name)} ${roleOptions(role)};
  END IF;
END
$$`,
  );
}

/** Gives every databricks_reader_<n> role the statement timeout of databricks.reader_statement_timeout. */
export const ALTER_DATABRICKS_READER_ROLES = `DO $$
DECLARE
  reader pg_catalog.name;
  timeout_value pg_catalog.text;
BEGIN
  timeout_value := pg_catalog.current_setting('databricks.reader_statement_timeout', true);
  IF timeout_value IS NOT NULL AND timeout_value OPERATOR(pg_catalog.<>) '' AND timeout_value OPERATOR(pg_catalog.<>) '0' THEN
    FOR reader IN
      SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.~) '^databricks_reader_\\d+$'
    LOOP
      EXECUTE pg_catalog.format('ALTER ROLE %I SET statement_timeout = %L', reader, timeout_value);
      RAISE LOG 'Updated statement_timeout = % for role %', timeout_value, reader;
    END LOOP;
  END IF;
END
$$`;

// compute_ctl's connections run with search_path='', so what these create or name is
// schema-qualified (public, where the reference's start puts them) or looked up.
export const DATABRICKS_AUTH_EXTENSION = [
  {
    sql: "DROP EXTENSION IF EXISTS databricks_auth",
    comment: "dropping existing databricks_auth extension",
  },
  {
    // Into public unless the extension's control file names its own schema.
    sql: `DO $$
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'public', true);
  CREATE EXTENSION databricks_auth;
END
$$`,
    comment: "creating databricks_auth extension",
  },
  {
    sql: `DO $$
DECLARE
  schema_name pg_catalog.name;
BEGIN
  SELECT n.nspname INTO schema_name FROM pg_catalog.pg_extension e
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
    WHERE e.extname OPERATOR(pg_catalog.=) 'databricks_auth';
  EXECUTE pg_catalog.format('GRANT SELECT ON %I.databricks_auth_metrics TO pg_monitor', schema_name);
END
$$`,
    comment: "grant select on databricks auth counters",
  },
];

export const DATABRICKS_GRANTS = [
  {
    sql: "GRANT USAGE ON SCHEMA neon TO databricks_monitor",
    comment: "Permissions needed to execute neon.* functions (in the postgres database)",
  },
  {
    sql: "GRANT SELECT, INSERT, UPDATE ON public.health_check TO databricks_monitor",
    comment: "Permissions needed for read and write probes",
  },
  {
    sql: "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(pg_catalog.text) TO databricks_monitor",
    comment: "Permissions needed to monitor .snap file counts",
  },
  {
    sql: "GRANT SELECT ON neon.neon_perf_counters TO databricks_monitor",
    comment: "Permissions needed to access neon performance counters view",
  },
  {
    sql: "GRANT EXECUTE ON FUNCTION neon.get_perf_counters() TO databricks_monitor",
    comment: "Permissions needed to execute the underlying performance counters function",
  },
];

/** The monitor's statement timeout and the write probe it calls (1, or an exception). */
export const DATABRICKS_MISC = `ALTER ROLE databricks_monitor SET statement_timeout = '60s';

CREATE OR REPLACE FUNCTION public.health_check_write_succeeds()
RETURNS pg_catalog.int4 LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.health_check VALUES (1, pg_catalog.now())
    ON CONFLICT (id) DO UPDATE SET updated_at = pg_catalog.now();
  RETURN 1;
EXCEPTION WHEN OTHERS THEN
  RAISE EXCEPTION '[DATABRICKS_SMGR] health_check failed: [%] %', SQLSTATE, SQLERRM;
END
$$`;
