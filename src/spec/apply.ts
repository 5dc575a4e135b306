// Spec application end to end: connect, read the catalog, plan, execute. Also the dry run (the
// same planner over the same catalog, printed instead of executed) and the concurrency rule.
import type { Sql } from "postgres";
import { type ComputeSpec, computeModeType } from "../api/spec.ts";
import { log } from "../log.ts";
import { maintenanceClient } from "../postgres/client.ts";
import { readCatalog, readPublicSchemas } from "./catalog.ts";
import { APPLY_APPLICATION_NAME, type ExecuteReport, executePlan } from "./execute.ts";
import { formatPlan, type Plan, planSpec, publicSchemasToRead } from "./plan.ts";

const PLAN_APPLICATION_NAME = "compute_ctl:plan";

export interface ApplySqlOptions {
  connstr: URL;
  privilegedRoleName: string;
  /** ParsedSpec.timelineId: the drop-subscriptions marker's key. */
  timelineId: string;
  concurrency: number;
  /** Lakebase mode: the Databricks phases and the privileged role without REPLICATION. */
  lakebase?: boolean;
  /** More `-c` options for every apply connection (lakebase: `-c statement_timeout=2min`). */
  extraOptions?: string;
  /** Called for every failed statement. */
  onStatementError?: (err: unknown) => void;
}

export interface ApplyResult extends ExecuteReport {
  plan: Plan;
  planMs: number;
  executeMs: number;
}

/**
 * Why a start or /configure runs no catalog statements for `spec`, or null when it runs them.
 * The one place this is decided: the lifecycle asks before it applies, the dry run before it plans.
 */
export function catalogUpdatesSkipped(spec: ComputeSpec): string | null {
  if (spec.skip_pg_catalog_updates) return "skip_pg_catalog_updates is set";
  const mode = computeModeType(spec.mode);
  // Replicas and static computes are read-only.
  if (mode !== "primary") return `a ${mode} compute is read-only`;
  return null;
}

/** The maintenance connection, which planning may close and open again. */
interface Main {
  sql: Sql;
  reconnect: () => Promise<Sql>;
}

async function plan(
  main: Main,
  spec: ComputeSpec,
  opts: ApplySqlOptions,
  applicationName: string,
): Promise<Plan> {
  const snapshot = await readCatalog(main.sql, {
    markerTimelineId: spec.drop_subscriptions_before_start ? opts.timelineId : null,
  });
  const wanted = publicSchemasToRead(spec, snapshot);
  if (wanted.length > 0) {
    // The maintenance connection is closed while the databases are read, which may then use its
    // slot too: never more than 1 + concurrency connections at once, as while executing.
    await main.sql.end({ timeout: 5 }).catch(() => {});
    // Over connections like the apply's own, so CURRENT_USER is the role the phase runs as.
    snapshot.publicSchemas = await readPublicSchemas(wanted, snapshot.databases, {
      connstr: opts.connstr,
      privilegedRoleName: opts.privilegedRoleName,
      concurrency: opts.concurrency + 1,
      applicationName,
      extraOptions: opts.extraOptions,
    });
    main.sql = await main.reconnect();
  }
  return planSpec(snapshot, spec, {
    privilegedRoleName: opts.privilegedRoleName,
    timelineId: opts.timelineId,
    lakebase: opts.lakebase,
  });
}

/** Brings the catalog of the Postgres at `connstr` in line with `spec`. */
export async function applySpecSql(spec: ComputeSpec, opts: ApplySqlOptions): Promise<ApplyResult> {
  log.info(`Applying config with max ${opts.concurrency} concurrency`);
  const connect = () => maintenanceClient(opts.connstr, APPLY_APPLICATION_NAME, opts.extraOptions);
  const main: Main = { sql: await connect(), reconnect: connect };
  try {
    const t0 = performance.now();
    const p = await plan(main, spec, opts, APPLY_APPLICATION_NAME);
    const t1 = performance.now();
    const report = await executePlan(p, {
      connstr: opts.connstr,
      concurrency: opts.concurrency,
      main: main.sql,
      extraOptions: opts.extraOptions,
      onStatementError: opts.onStatementError,
    });
    const t2 = performance.now();
    log.info("applied the spec", {
      statements: report.statements,
      connections: report.connections,
      plan_ms: Math.round(t1 - t0),
      execute_ms: Math.round(t2 - t1),
    });
    return { ...report, plan: p, planMs: t1 - t0, executeMs: t2 - t1 };
  } finally {
    await main.sql.end({ timeout: 5 }).catch(() => {});
  }
}

/**
 * The dry run: what a start or /configure with `spec` would run against this Postgres now, as a
 * psql script. A spec whose catalog updates are skipped plans nothing, says why in a comment, and
 * does not connect.
 */
export async function planSpecSql(
  spec: ComputeSpec,
  opts: Omit<ApplySqlOptions, "concurrency">,
): Promise<{ plan: Plan | null; text: string }> {
  const skipped = catalogUpdatesSkipped(spec);
  if (skipped !== null) {
    return { plan: null, text: `-- nothing to run: ${skipped}\n` };
  }
  const connect = () => maintenanceClient(opts.connstr, PLAN_APPLICATION_NAME);
  const main: Main = { sql: await connect(), reconnect: connect };
  try {
    const p = await plan(main, spec, { ...opts, concurrency: 1 }, PLAN_APPLICATION_NAME);
    const systemDb = decodeURIComponent(opts.connstr.pathname.slice(1)) || "postgres";
    return { plan: p, text: formatPlan(p, systemDb) };
  } finally {
    await main.sql.end({ timeout: 5 }).catch(() => {});
  }
}

/** Rust's `usize::from_str`: digits with an optional `+`, no whitespace. */
function parseUsize(text: string): number | null {
  return /^\+?[0-9]+$/.test(text) ? Number(text) : null;
}

/**
 * Concurrency on the first start, from max_connections: taken from the settings,
 * else from the first postgresql_conf line whose key is exactly max_connections with an integer
 * value. Clamped to at least 1 (0 would never run a task).
 */
export function startConcurrency(spec: ComputeSpec): number {
  let limit: number | null = null;
  // A setting without a value counts as absent, as in the reference's lookup.
  const setting = spec.cluster.settings?.find((o) => o.name === "max_connections")?.value;
  if (setting != null) {
    limit = parseUsize(setting);
  } else {
    for (const line of (spec.cluster.postgresql_conf ?? "").split("\n")) {
      const eq = line.indexOf("=");
      if (eq < 0 || line.slice(0, eq).trim() !== "max_connections") continue;
      limit = parseUsize(line.slice(eq + 1).trim());
      if (limit !== null) break;
    }
  }
  let n: number;
  if (limit === null) n = 10;
  else if (limit < 10) n = limit;
  else if (limit < 30) n = 10;
  else if (limit < 300) n = Math.floor(limit / 3);
  else n = 100;
  return Math.max(1, n);
}

/** Concurrency on /configure: the spec's reconfigure_concurrency (default 1), at least 1. */
export function reconfigureConcurrency(spec: ComputeSpec): number {
  return Math.max(1, spec.reconfigure_concurrency);
}
