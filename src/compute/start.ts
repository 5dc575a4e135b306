// The start path: PGDATA, Postgres, and the primary's configuration. Reconfiguring a running
// compute rewrites the configuration and reloads it.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { ParsedSpec } from "../api/parsed-spec.ts";
import { computeModeType } from "../api/spec.ts";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import {
  collectionIntervalFromSpec,
  reportInstalledExtensions,
} from "../monitor/installed-extensions.ts";
import { localClient } from "../postgres/client.ts";
import { configFileErrors } from "../postgres/conf-check.ts";
import { lineInFile, withTmpOverride } from "../postgres/files.ts";
import { pgCtlReload, spawnPostgres, waitForPostgres } from "../postgres/process.ts";
import { resizeSwap, setDiskQuota } from "../sidecars/neonvm.ts";
import { catalogUpdatesSkipped } from "../spec/apply.ts";
import { inSpan } from "../tracing/index.ts";
import { elapsedMs, nowMicros } from "../util/clock.ts";
import { replaceFile } from "../util/fs-write.ts";
import { applySpec } from "./apply.ts";
import type { ComputeEnv } from "./env.ts";
import { databricksEnv } from "./lakebase.ts";
import { type PreStartTask, runPreStartTasks } from "./pre-start.ts";
import { preparePgdata, writeConf } from "./prepare-pgdata.ts";

/** Lifts the cluster size limit while compute_ctl itself creates roles and extensions. */
const CATALOG_UPDATE_OVERRIDE = "neon.max_cluster_size=-1";

function describe(pspec: ParsedSpec): string {
  const s = pspec.spec;
  return [
    `starting compute for project ${s.project_id ?? "None"}`,
    `operation ${s.operation_uuid ?? "None"}`,
    `tenant ${pspec.tenantId}`,
    `timeline ${pspec.timelineId}`,
    `branch ${s.branch_id ?? "None"}`,
    `endpoint ${s.endpoint_id ?? "None"}`,
    `features ${JSON.stringify(s.features)}`,
  ].join(", ");
}

/**
 * Starts the compute. `onPostgres` receives the postmaster as soon as it is spawned, so the
 * caller can stop it if a later step fails. Resolves once Postgres is ready and configured.
 */
export async function startCompute(
  env: ComputeEnv,
  pspec: ParsedSpec,
  onPostgres: (proc: Subprocess) => void,
): Promise<Subprocess> {
  const { params, tools, state } = env;
  const { timings } = state;
  log.info(describe(pspec));

  // pgbouncer and local_proxy are configured in the background; Postgres never waits for them.
  void env.sidecars.tunePgbouncerInBackground(pspec.spec);
  void env.sidecars.configureLocalProxyInBackground(pspec.spec);

  const preStart = await runPreStartTasks(preStartTasks(env, pspec));

  const t0 = performance.now();
  let extraEnv: Record<string, string> | undefined;
  if (params.lakebaseMode) {
    extraEnv = databricksEnv(pspec, params.computeId, env.instanceId);
    log.info(`Starting Postgres for databricks endpoint id: ${extraEnv.DATABRICKS_ENDPOINT_ID}`);
  }
  const pg = await inSpan("start_postgres", async () => {
    const proc = spawnPostgres({
      pgbin: tools.postgres,
      pgdata: params.pgdata,
      token: pspec.storageAuthToken,
      children: env.children,
      extraEnv,
    });
    onPostgres(proc);
    await waitForPostgres({ proc, pgdata: params.pgdata });
    return proc;
  });
  timings.start_postgres_ms = elapsedMs(t0);

  const t1 = performance.now();
  if (computeModeType(pspec.spec.mode) === "primary") {
    await inSpan("apply_config", () => configureAsPrimary(env, pspec));
    void reportInstalledExtensions(params.connstr, env.metrics, {
      yieldTo: () => state.whenNotApplying(),
    });
  }
  timings.config_ms = elapsedMs(t1);
  timings.total_startup_ms = Math.max(0, Math.floor((nowMicros() - state.startTimeMicros) / 1000));
  log.info("compute start finished", {
    metrics: JSON.stringify(timings),
    pre_start: JSON.stringify(preStart.tasks),
    postmaster_pid: pg.pid,
  });
  return pg;
}

/**
 * What must be done before Postgres starts, run concurrently: PGDATA (which waits for the TLS
 * files when Postgres gets TLS), the remote extensions to preload, and the log exports.
 */
function preStartTasks(env: ComputeEnv, pspec: ParsedSpec): PreStartTask[] {
  const { spec } = pspec;
  const tasks: PreStartTask[] = [
    { name: "pgdata", run: () => inSpan("prepare_pgdata", () => preparePgdata(env, pspec)) },
  ];
  if (spec.remote_extensions) {
    tasks.push({ name: "remote_extensions", run: () => env.remote.prepareAtStart(pspec) });
  }
  // The certificate must be readable before Postgres starts; its watcher starts from here.
  if (env.tls) tasks.push({ name: "tls", run: () => env.sidecars.startCertWatch() });
  // Swap and the disk quota are sized before Postgres starts, so it never runs without them.
  if (spec.swap_size_bytes != null && env.params.resizeSwapOnBind) {
    const bytes = spec.swap_size_bytes;
    tasks.push({ name: "swap", run: () => resizeSwap(bytes) });
  }
  const mountpoint = env.params.setDiskQuotaForFs;
  if (spec.disk_quota_bytes != null && mountpoint != null) {
    const bytes = spec.disk_quota_bytes;
    tasks.push({ name: "disk_quota", run: () => setDiskQuota(bytes, mountpoint) });
  }
  // The audit export (start only) and then the Postgres log export: both restart rsyslog.
  tasks.push({
    name: "rsyslog",
    run: async () => {
      await env.sidecars.configureAuditExport(spec, env.params.pgdata);
      await env.sidecars.configurePostgresLogsExport(spec);
    },
  });
  return tasks;
}

async function configureAsPrimary(env: ComputeEnv, pspec: ParsedSpec): Promise<void> {
  const { pgdata } = env.params;
  if (catalogUpdatesSkipped(pspec.spec) === null) {
    env.state.extensionStatsIntervalSeconds = collectionIntervalFromSpec(
      pspec.spec.suspend_timeout_seconds,
    );
    await withTmpOverride(pgdata, CATALOG_UPDATE_OVERRIDE, async () => {
      await pgCtlReload(env.tools.pgCtl, pgdata);
      await applySpec(env, pspec, "start");
      // Here local_proxy is configured synchronously: a failure fails the start.
      try {
        await env.sidecars.configureLocalProxy(pspec.spec);
      } catch (err) {
        throw new Error("apply_config local_proxy", { cause: err });
      }
    });
    // Subscriptions were disabled for the start (drop_subscriptions_before_start); once the spec
    // is applied they may run again. A no-op line when the flag was false.
    await lineInFile(
      join(pgdata, "postgresql.conf"),
      "neon.disable_logical_replication_subscribers=false",
    );
    await pgCtlReload(env.tools.pgCtl, pgdata);
  }
  void postApply(env);
}

/** Upgrades the neon extension in the background; failures are only logged (as the reference). */
async function postApply(env: ComputeEnv): Promise<void> {
  const sql = localClient(env.params.connstr, { applicationName: "compute_ctl:post_apply_config" });
  try {
    await sql.unsafe("ALTER EXTENSION neon UPDATE").simple();
  } catch (err) {
    log.warn(`could not update the neon extension: ${formatOneLine(err)}`);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/**
 * Writes the new postgresql.conf and asks Postgres whether it accepts it before the reload. A
 * file Postgres rejects (the reference reloads it anyway and reports success while Postgres keeps
 * the old settings, or applies part of them) is replaced by the previous one and the
 * configuration fails with Postgres's first complaint.
 */
async function writeCheckedConf(env: ComputeEnv, pspec: ParsedSpec): Promise<void> {
  const path = join(env.params.pgdata, "postgresql.conf");
  const previous = await readFile(path).catch(() => null);
  await writeConf(env, pspec);
  const errors = await configFileErrors(env.params.connstr);
  if (errors.length === 0) return;
  if (previous !== null) await replaceFile(path, previous);
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
  throw new Error(`Postgres rejects the new configuration: ${errors[0]}${more}`);
}

/** /configure on a running compute: new postgresql.conf, reload, and the catalog updates. */
export async function reconfigureCompute(env: ComputeEnv, pspec: ParsedSpec): Promise<void> {
  const { pgdata } = env.params;
  env.state.extensionStatsIntervalSeconds = collectionIntervalFromSpec(
    pspec.spec.suspend_timeout_seconds,
  );
  void env.sidecars.tunePgbouncerInBackground(pspec.spec);
  void env.sidecars.configureLocalProxyInBackground(pspec.spec);
  await env.sidecars.configurePostgresLogsExport(pspec.spec);
  await writeCheckedConf(env, pspec);
  await pgCtlReload(env.tools.pgCtl, pgdata);
  if (catalogUpdatesSkipped(pspec.spec) === null) {
    await withTmpOverride(pgdata, CATALOG_UPDATE_OVERRIDE, async () => {
      await pgCtlReload(env.tools.pgCtl, pgdata);
      await applySpec(env, pspec, "reconfigure");
    });
    await pgCtlReload(env.tools.pgCtl, pgdata);
  }
}
