// Applying the spec to the running Postgres (roles, databases, grants, extensions), called by
// the lifecycle inside the temporary override: on a primary's start and on /configure. On start
// the catalog migrations follow in the background, as in the reference: they never hold up
// reaching Running, and a failure is only logged and counted.
import type { ParsedSpec } from "../api/parsed-spec.ts";
import { formatOneLine } from "../errors.ts";
import { evalFailpoint } from "../failpoints.ts";
import { log } from "../log.ts";
import { localClient } from "../postgres/client.ts";
import {
  applySpecSql,
  catalogUpdatesSkipped,
  reconfigureConcurrency,
  startConcurrency,
} from "../spec/apply.ts";
import { renderMigrations, runMigrations } from "../spec/migrations.ts";
import type { ComputeEnv } from "./env.ts";

export type ApplyPhase = "start" | "reconfigure";

export async function applySpec(
  env: ComputeEnv,
  pspec: ParsedSpec,
  phase: ApplyPhase,
): Promise<void> {
  const { spec } = pspec;
  const skipped = catalogUpdatesSkipped(spec);
  if (skipped !== null) {
    log.info(`not applying the spec: ${skipped}`);
    return;
  }
  const lakebase = env.params.lakebaseMode;
  // Lakebase: a start's statements should finish quickly; one stuck for minutes means Postgres
  // cannot reach its pageserver, and the start should fail rather than hang.
  const extraOptions = lakebase && phase === "start" ? LAKEBASE_START_OPTIONS : undefined;
  await applySpecSql(spec, {
    connstr: env.params.connstr,
    privilegedRoleName: env.params.privilegedRoleName,
    timelineId: pspec.timelineId,
    concurrency: phase === "start" ? startConcurrency(spec) : reconfigureConcurrency(spec),
    lakebase,
    extraOptions,
    onStatementError: lakebase ? (err) => countStatementTimeout(env, err) : undefined,
  });
  if (phase === "start") void migrateInBackground(env, extraOptions);
}

/** The apply connections' statement timeout at a lakebase start (the reference's 2 minutes). */
export const LAKEBASE_START_OPTIONS = "-c statement_timeout=2min";

/**
 * A statement cancelled by a timeout (SQLSTATE 57014) during apply usually means Postgres is stuck
 * retrying a pageserver that refuses it; lakebase counts every such statement.
 */
function countStatementTimeout(env: ComputeEnv, err: unknown): void {
  if ((err as { code?: unknown } | null)?.code === "57014") {
    env.metrics.configureStatementTimeoutErrors.inc();
  }
}

/** Runs the migrations on their own connection; resolves when done, never rejects. */
export async function migrateInBackground(env: ComputeEnv, extraOptions?: string): Promise<void> {
  const sql = localClient(env.params.connstr, {
    applicationName: "compute_ctl:migrations",
    extraOptions,
  });
  try {
    log.info("handle migrations");
    await runMigrations(sql, {
      migrations: renderMigrations(env.params.privilegedRoleName, env.params.lakebaseMode),
      onFailure: (id) => env.metrics.migrationFailed.inc({ migration_id: String(id) }),
      failAt: migrationFailpoint,
    });
  } catch (err) {
    log.error(`Failed to run migrations: ${formatOneLine(err)}`);
  } finally {
    await sql.end({ timeout: 5 }).catch(() => {});
  }
}

/**
 * `FAILPOINTS=compute-migration=return(N)` fails migration N (testing only: the registry is empty
 * unless COMPUTE_CTL_TESTING=1). Evaluated once per migration as in the reference, so counts like
 * `1*return(N)` are consumed the same way; a `return` without a number is a configuration error
 * there (a panic) and fails the migration here.
 */
export function migrationFailpoint(migrationId: number): boolean {
  const fp = evalFailpoint("compute-migration");
  if (fp === null) return false;
  if (fp.arg === null || !/^[+-]?[0-9]+$/.test(fp.arg)) {
    throw new Error(`failpoint compute-migration needs a migration id, got ${fp.arg ?? "none"}`);
  }
  return Number(fp.arg) === migrationId;
}
