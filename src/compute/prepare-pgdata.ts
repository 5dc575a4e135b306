// Preparing PGDATA for a start: wipe and recreate it, write postgresql.conf (before the
// safekeeper sync, which reads it), pick the LSN for the mode, fetch the basebackup into it,
// and apply the fix-ups Postgres and the neon extension expect.
import { chmod, copyFile, mkdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ParsedSpec } from "../api/parsed-spec.ts";
import { computeModeType, shardIndex, staticModeLsn } from "../api/spec.ts";
import { log } from "../log.ts";
import { readOvercommitMemory, tlsEnabled, writePostgresConf } from "../postgres/conf.ts";
import { lineInFile, PG_HBA_MD5_LINE } from "../postgres/files.ts";
import { findStalePostmaster, stopStalePostmaster } from "../postgres/stale-postmaster.ts";
import { waitForTlsPair } from "../sidecars/tls.ts";
import {
  type BasebackupSource,
  basebackupCommand,
  getBasebackup,
  grpcBasebackupSource,
  libpqBasebackupSource,
} from "../storage/basebackup.ts";
import { checkSafekeepersSynced } from "../storage/safekeepers.ts";
import { syncSafekeepersWithRetries } from "../storage/sync-safekeepers.ts";
import { inSpan } from "../tracing/index.ts";
import { elapsedMs } from "../util/clock.ts";
import type { ComputeEnv } from "./env.ts";
import { prepareDatabricksPgdata } from "./lakebase.ts";
import { discardPgdata } from "./old-pgdata.ts";

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * `rm -rf` (the old directory is moved aside and deleted in the background, see old-pgdata.ts)
 * then a NON-recursive mkdir (the parent must exist) and mode 0700. A postmaster still
 * running on the old PGDATA (left by an earlier compute_ctl) is stopped first. In lakebase mode a
 * failed mkdir is ignored, as the reference does for a data directory mounted ahead of time; a
 * real problem then shows in the chmod or later in Postgres.
 */
export async function createPgdata(pgdata: string, lakebase = false): Promise<void> {
  const stale = await findStalePostmaster(pgdata);
  if (stale) {
    log.warn(
      `a postmaster from an earlier run (pid ${stale.pid}) is still running on ${pgdata}: stopping it`,
    );
    await stopStalePostmaster(stale);
  }
  await discardPgdata(pgdata);
  try {
    await mkdir(pgdata);
  } catch (err) {
    if (!lakebase) throw new Error(`cannot create data directory ${pgdata}`, { cause: err });
    log.warn(`ignoring the failed creation of ${pgdata} in lakebase mode: ${String(err)}`);
  }
  await chmod(pgdata, 0o700);
}

export function confInputs(env: ComputeEnv, pspec: ParsedSpec) {
  return {
    pspec,
    privilegedRoleName: env.params.privilegedRoleName,
    internalHttpPort: env.params.internalHttpPort,
    tls: env.tls,
    lakebase: env.params.lakebaseMode ? { connstrPort: connstrPort(env.params.connstr) } : null,
  };
}

/** The explicit port of --connstr, or null when it names none. */
export function connstrPort(connstr: URL): number | null {
  return connstr.port === "" ? null : Number(connstr.port);
}

export async function writeConf(env: ComputeEnv, pspec: ParsedSpec): Promise<void> {
  const inputs = { ...confInputs(env, pspec), overcommitMemory: await readOvercommitMemory() };
  await writePostgresConf(env.params.pgdata, inputs);
  // With `ssl = on` Postgres needs a matching key and certificate in PGDATA: wait for them.
  if (env.tls && tlsEnabled(inputs)) {
    await waitForTlsPair(env.params.pgdata, env.tls, { signal: env.sidecars.signal });
  }
}

/**
 * The LSN to start from: a Primary asks the safekeepers (the fast path when a quorum already
 * agrees, else `--sync-safekeepers`); a Static compute has its own; a Replica takes the latest.
 */
export async function selectLsn(env: ComputeEnv, pspec: ParsedSpec): Promise<string> {
  const mode = pspec.spec.mode;
  const staticLsn = staticModeLsn(mode);
  if (staticLsn !== null) return staticLsn;
  if (computeModeType(mode) === "replica") return "0/0";

  const { timings } = env.state;
  const t0 = performance.now();
  let synced: string | null = null;
  try {
    synced = await inSpan("check_safekeepers_synced", () =>
      checkSafekeepersSynced({
        safekeepers: pspec.safekeeperConnstrings,
        tenantId: pspec.tenantId,
        timelineId: pspec.timelineId,
        token: pspec.storageAuthToken,
      }),
    );
  } catch (err) {
    log.warn(`checking whether the safekeepers are synced failed: ${String(err)}`);
  }
  timings.sync_sk_check_ms = elapsedMs(t0);
  if (synced !== null) {
    log.info(`safekeepers are already synced at LSN ${synced}, skipping --sync-safekeepers`);
    return synced;
  }
  const { lsn, ms } = await inSpan("sync_safekeepers", () =>
    syncSafekeepersWithRetries({
      pgbin: env.tools.postgres,
      pgdata: env.params.pgdata,
      token: pspec.storageAuthToken,
      children: env.children,
    }),
  );
  timings.sync_safekeepers_ms = Math.round(ms);
  log.info(`safekeepers synced at LSN ${lsn}`);
  return lsn;
}

/**
 * The URL of the pageserver that serves the basebackup: shard 0 (key `00CC`), first pageserver,
 * in the protocol the conninfo prefers (`libpq_url` or `grpc_url`).
 */
export function shardZeroUrl(pspec: ParsedSpec): string {
  const info = pspec.pageserverConnInfo;
  const key = shardIndex(0, info.shardCount);
  const ps = info.shards[key]?.pageservers[0];
  const url = info.preferProtocol === "grpc" ? ps?.grpcUrl : ps?.libpqUrl;
  if (!url) throw new Error(`no ${info.preferProtocol} pageserver for shard ${key}`);
  return url;
}

export function basebackupSource(pspec: ParsedSpec, lsn: string): BasebackupSource {
  const mode = computeModeType(pspec.spec.mode);
  const url = shardZeroUrl(pspec);
  if (pspec.pageserverConnInfo.preferProtocol === "grpc") {
    return grpcBasebackupSource({
      target: {
        url,
        tenantId: pspec.tenantId,
        timelineId: pspec.timelineId,
        shardId: shardIndex(0, pspec.pageserverConnInfo.shardCount),
        token: pspec.storageAuthToken,
      },
      lsn,
      mode,
    });
  }
  return libpqBasebackupSource({
    connstring: url,
    token: pspec.storageAuthToken,
    mode,
    command: basebackupCommand({
      tenantId: pspec.tenantId,
      timelineId: pspec.timelineId,
      lsn,
      mode,
    }),
  });
}

export async function fetchBasebackup(env: ComputeEnv, pspec: ParsedSpec, lsn: string) {
  const result = await getBasebackup({
    source: basebackupSource(pspec, lsn),
    pgdata: env.params.pgdata,
    lsn,
    onFirstByte: () => env.startHooks?.streaming(),
    // Each attempt runs in a child process of this executable (storage/basebackup-child.ts).
    child: { children: env.children },
  });
  const { timings } = env.state;
  timings.basebackup_ms = Math.round(result.basebackupMs);
  timings.basebackup_bytes = result.basebackupBytes;
  timings.pageserver_connect_micros = Math.round(result.pageserverConnectMicros);
}

/**
 * What the reference changes in PGDATA after unpacking the basebackup, in its order. `lakebase`
 * adds the Databricks TLS files and pg_hba/pg_ident includes (before the md5 line).
 */
export async function fixupPgdata(
  pgdata: string,
  pspec: ParsedSpec,
  lakebase = false,
): Promise<void> {
  const neonSignal = join(pgdata, "neon.signal");
  const zenithSignal = join(pgdata, "zenith.signal");
  if (!(await exists(neonSignal)) && (await exists(zenithSignal))) {
    await copyFile(zenithSignal, neonSignal);
  }
  const databricks = pspec.spec.databricks_settings;
  if (lakebase && databricks !== null) await prepareDatabricksPgdata(pgdata, databricks);
  await lineInFile(join(pgdata, "pg_hba.conf"), PG_HBA_MD5_LINE);
  // Dynamic shared memory lives in /dev/shm; the basebackup must carry the directory.
  const dynshmem = join(pgdata, "pg_dynshmem");
  try {
    await rm(dynshmem, { recursive: true });
  } catch (err) {
    throw new Error(`cannot remove ${dynshmem}: the basebackup has no pg_dynshmem`, { cause: err });
  }
  await symlink("/dev/shm/", dynshmem);
  if (computeModeType(pspec.spec.mode) !== "primary") {
    const standby = join(pgdata, "standby.signal");
    if (!(await exists(standby))) await writeFile(standby, "");
  }
}

export async function preparePgdata(env: ComputeEnv, pspec: ParsedSpec): Promise<void> {
  const { pgdata } = env.params;
  await createPgdata(pgdata, env.params.lakebaseMode);
  log.debug("start phase pgdata_wiped");
  await writeConf(env, pspec);
  log.debug("start phase conf_written");
  const lsn = await selectLsn(env, pspec);
  log.debug("start phase lsn_selected");
  await inSpan("get_basebackup", () => fetchBasebackup(env, pspec, lsn), {
    attributes: { lsn },
  });
  log.debug("start phase basebackup_extracted");
  await fixupPgdata(pgdata, pspec, env.params.lakebaseMode);
  log.debug("start phase pgdata_fixed");
}
