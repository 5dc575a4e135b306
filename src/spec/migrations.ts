// Catalog migrations, run once per cluster in the background after a primary's first apply.
// neon_migration.migration_id holds how many have run; each runs in its own
// transaction together with the bump of that counter, so a failure leaves the previous count and
// the next start resumes there. ONLY APPEND to the list: ids are positions.

import type { Sql } from "postgres";
import { isPrivilegedRoleName } from "../config/role-name.ts";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";

/** `{priv}` is replaced by the privileged role name (checked by isPrivilegedRoleName, written bare). */
export const MIGRATIONS: readonly string[] = [
  // 1
  "ALTER ROLE {priv} BYPASSRLS",
  // 2: repairs branches from the time BYPASSRLS leaked to every role (INC-110). Members of the
  // privileged role inherit again; everyone else outside the reserved pg_ names loses BYPASSRLS.
  `DO $$
DECLARE
  r pg_catalog.name;
BEGIN
  FOR r IN SELECT rolname FROM pg_catalog.pg_roles
           WHERE pg_catalog.pg_has_role(rolname, '{priv}'::pg_catalog.name, 'member')
  LOOP
    EXECUTE pg_catalog.format('ALTER ROLE %I INHERIT', r);
  END LOOP;
  FOR r IN SELECT rolname FROM pg_catalog.pg_roles
           WHERE NOT pg_catalog.pg_has_role(rolname, '{priv}'::pg_catalog.name, 'member')
             AND NOT pg_catalog.starts_with(rolname, 'pg_')
  LOOP
    EXECUTE pg_catalog.format('ALTER ROLE %I NOBYPASSRLS', r);
  END LOOP;
END
$$`,
  // 3: the role exists from PG16 on.
  `DO $$
BEGIN
  IF pg_catalog.current_setting('server_version_num')::pg_catalog.int4 OPERATOR(pg_catalog.>=) 160000 THEN
    EXECUTE 'GRANT pg_create_subscription TO {priv}';
  END IF;
END
$$`,
  // 4
  "GRANT pg_monitor TO {priv} WITH ADMIN OPTION",
  // 5-8: default privileges, now granted in every database by the apply itself.
  "-- SKIP: default privileges on tables are granted by the apply (default grants)",
  "-- SKIP: default privileges on sequences are granted by the apply (default grants)",
  "-- SKIP: default privileges on tables with grant option are granted by the apply",
  "-- SKIP: default privileges on sequences with grant option are granted by the apply",
  // 9: revoking REPLICATION from every role turned out not to prevent subscriptions.
  "-- SKIP: revoking REPLICATION from existing roles was dropped",
  // 10: both functions are grantable from PG16 on.
  `DO $$
BEGIN
  IF pg_catalog.current_setting('server_version_num')::pg_catalog.int4 OPERATOR(pg_catalog.>=) 160000 THEN
    EXECUTE 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_export_snapshot() TO {priv}';
    EXECUTE 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_log_standby_snapshot() TO {priv}';
  END IF;
END
$$`,
  // 11
  "GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_replication_origin_status() TO {priv}",
  // 12
  "GRANT pg_signal_backend TO {priv} WITH ADMIN OPTION",
];

export function renderMigrations(privilegedRoleName: string, lakebase = false): string[] {
  if (!isPrivilegedRoleName(privilegedRoleName)) {
    throw new Error(`invalid privileged role name '${privilegedRoleName}'`);
  }
  const rendered = MIGRATIONS.map((m) => m.replaceAll("{priv}", privilegedRoleName));
  // Lakebase's privileged role is databricks_superuser: every neon_superuser in the rendered
  // text, the default role name included, is renamed.
  return lakebase
    ? rendered.map((m) => m.replaceAll("neon_superuser", "databricks_superuser"))
    : rendered;
}

const PREPARE = [
  "CREATE SCHEMA IF NOT EXISTS neon_migration",
  "CREATE TABLE IF NOT EXISTS neon_migration.migration_id (key pg_catalog.int4 NOT NULL PRIMARY KEY, id pg_catalog.int8 NOT NULL DEFAULT 0)",
  "INSERT INTO neon_migration.migration_id VALUES (0, 0) ON CONFLICT DO NOTHING",
  "ALTER SCHEMA neon_migration OWNER TO cloud_admin",
  "REVOKE ALL ON SCHEMA neon_migration FROM PUBLIC",
];

export interface MigrationOptions {
  migrations: readonly string[];
  /** Called with the id of a migration that failed (the failure counter). */
  onFailure?: (migrationId: number) => void;
  /**
   * The reference's `compute-migration` failpoint (see compute/apply.ts): asked once per migration,
   * skipped ones included, after its SQL ran; true makes it fail, so its transaction rolls back.
   */
  failAt?: (migrationId: number) => boolean;
}

/** The number of migrations applied so far. */
export async function currentMigrationId(sql: Sql): Promise<number> {
  const rows = await sql.unsafe("SELECT id FROM neon_migration.migration_id");
  return Number(rows[0]?.id ?? 0);
}

/**
 * Runs the migrations not yet recorded. Returns the id reached; throws at the first failure
 * (after counting it), leaving the id of the last success in the table.
 */
export async function runMigrations(sql: Sql, opts: MigrationOptions): Promise<number> {
  for (const stmt of PREPARE) await sql.unsafe(stmt).simple();
  let done = await currentMigrationId(sql);
  while (done < opts.migrations.length) {
    const id = done + 1;
    const text = opts.migrations[done]!;
    const skip = text.startsWith("-- SKIP");
    try {
      await sql.begin(async (tx) => {
        if (skip) {
          log.info(`Skipping migration id=${id}`);
        } else {
          log.info(`Running migration id=${id}`);
          await tx.unsafe(text).simple();
        }
        if (opts.failAt?.(id)) {
          throw new Error(`migration ${id} was configured to fail because of a failpoint`);
        }
        await tx.unsafe("UPDATE neon_migration.migration_id SET id = $1", [id]);
      });
    } catch (err) {
      log.error(`Failed to run migration id=${id}: ${formatOneLine(err)}`);
      opts.onFailure?.(id);
      throw new Error(`migration ${id} failed`, { cause: err });
    }
    log.info(`Finished migration id=${id}`);
    done = id;
  }
  return done;
}
