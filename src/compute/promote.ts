// POST /promote: turn this Replica into the Primary after the old primary stopped.
// One run per process: the first call starts it, concurrent and later calls get its result,
// failures included (the reference memoizes forever; a restart is the only retry). A client
// that disconnects does not stop the run.

import { formatLsn, tryParseLsn } from "../api/lsn.ts";
import type { ParsedSpec } from "../api/parsed-spec.ts";
import type { PromoteState } from "../api/promote.ts";
import { computeModeType } from "../api/spec.ts";
import { formatOneLine, withContext } from "../errors.ts";
import { failpoint, failpointsEnabled } from "../failpoints.ts";
import type { LfcManager } from "../lfc/manager.ts";
import { log } from "../log.ts";
import { maintenanceClient } from "../postgres/client.ts";
import { elapsedMs } from "../util/clock.ts";

/** The few SQL calls the promotion makes; each answers its rows as arrays of column values. */
export interface PromoteSql {
  query(text: string): Promise<unknown[][]>;
  close(): Promise<void>;
}

/**
 * What the promotion needs from the lifecycle: the current spec, adopting the new one, and a
 * place for the one promotion of this compute (kept there, so a rebuilt route group cannot start
 * a second one).
 */
export interface PromoteTarget {
  readonly spec: ParsedSpec | null;
  adoptPromotedSpec(pspec: ParsedSpec): Promise<void>;
  promotion?: Promise<PromoteState>;
}

export interface PromoteDeps {
  connstr: URL;
  lfc: Pick<LfcManager, "prewarmState">;
  lifecycle: PromoteTarget;
  /** Test seams; the defaults are the maintenance connection, 1 s polling and the testing switch. */
  connect?: () => Promise<PromoteSql>;
  retryIntervalMs?: number;
  testing?: () => boolean;
}

/** The reference polls the replay LSN 21 times (tries 0..=20), a second apart. */
export const CATCH_UP_RETRIES = 20;

async function defaultConnect(connstr: URL): Promise<PromoteSql> {
  const sql = await maintenanceClient(connstr);
  return {
    query: async (text) => (await sql.unsafe(text).simple().values()) as unknown[][],
    close: () => sql.end({ timeout: 1 }),
  };
}

/** `query_one`: exactly one row, its first column. */
async function queryOne(sql: PromoteSql, text: string, context: string): Promise<unknown> {
  let rows: unknown[][];
  try {
    rows = await sql.query(text);
  } catch (err) {
    throw withContext(context, err);
  }
  if (rows.length !== 1) {
    throw withContext(context, new Error(`query returned ${rows.length} rows instead of one`));
  }
  return rows[0]?.[0];
}

async function exec(sql: PromoteSql, text: string, context: string): Promise<void> {
  try {
    await sql.query(text);
  } catch (err) {
    throw withContext(context, err);
  }
}

/** A string literal for ALTER SYSTEM, which takes no bind parameters. */
function literal(s: string): string {
  // The reference interpolates unescaped; doubling quotes changes nothing for a sane list.
  return `'${s.replaceAll("'", "''")}'`;
}

/**
 * Testing builds of the reference: neon_local's primary and replica listen on different ports,
 * so the replica's own `port=` from its postgresql_conf is appended to the new one.
 */
export function keepOwnPort(current: ParsedSpec, next: ParsedSpec): ParsedSpec {
  const oldConf = current.spec.cluster.postgresql_conf;
  if (oldConf === null) throw new Error("pspec.spec.cluster.postgresql_conf missing for endpoint");
  const newConf = next.spec.cluster.postgresql_conf;
  if (newConf === null) {
    throw new Error("pspec.spec.cluster.postgresql_conf missing for supplied config");
  }
  let port: string | undefined;
  for (const line of oldConf.split("\n")) {
    const eq = line.indexOf("=");
    if (eq !== -1 && line.slice(0, eq).trim() === "port") port = line.slice(eq + 1).trim();
  }
  // The reference panics here (a missing key).
  if (port === undefined) throw new Error("pspec.spec.cluster.postgresql_conf has no port");
  const sep = newConf === "" || newConf.endsWith("\n") ? "" : "\n";
  return {
    ...next,
    spec: {
      ...next.spec,
      cluster: { ...next.spec.cluster, postgresql_conf: `${newConf}${sep}port=${port}\n` },
    },
  };
}

/** Checks that may fail before anything is touched: the mode and the prewarm attempt. */
function checkPreconditions(deps: PromoteDeps): ParsedSpec {
  const current = deps.lifecycle.spec;
  // The reference unwraps here (a panic, "promote sender dropped").
  if (current === null) throw new Error("compute has no spec");
  const mode = computeModeType(current.spec.mode);
  if (mode !== "replica") throw new Error(`compute mode "${mode}" is not replica`);
  const prewarm = deps.lfc.prewarmState();
  // A prewarm must have been attempted and have settled; a failed one only warns.
  if (prewarm.status === "not_prewarmed") throw new Error("compute NotPrewarmed");
  if (prewarm.status === "prewarming") throw new Error("compute Prewarming");
  if (prewarm.status === "failed") {
    log.warn("compute prewarm failed", { error: prewarm.error });
  }
  return current;
}

async function waitForReplay(
  sql: PromoteSql,
  primaryLsn: bigint,
  intervalMs: number,
): Promise<void> {
  let standbyLsn = 0n;
  for (let i = 0; i <= CATCH_UP_RETRIES; i++) {
    const value = await queryOne(
      sql,
      "SELECT pg_catalog.pg_last_wal_replay_lsn()",
      "getting last replay lsn",
    );
    // NULL means not in recovery; the reference panics on it.
    const parsed = typeof value === "string" ? tryParseLsn(value) : null;
    if (parsed === null) {
      throw withContext(
        "getting last replay lsn",
        new Error(`unexpected value ${JSON.stringify(value ?? null)}: not in recovery?`),
      );
    }
    standbyLsn = parsed;
    if (standbyLsn >= primaryLsn) return;
    log.info(`catching up, try ${i}`, {
      standby_lsn: formatLsn(standbyLsn),
      primary_lsn: formatLsn(primaryLsn),
    });
    await Bun.sleep(intervalMs);
  }
  throw new Error(`didn't catch up with primary in ${CATCH_UP_RETRIES} retries`);
}

async function promoteOnce(
  deps: PromoteDeps,
  next: ParsedSpec,
  primaryLsn: bigint,
): Promise<PromoteState> {
  const current = checkPreconditions(deps);
  let sql: PromoteSql;
  try {
    sql = await (deps.connect ?? (() => defaultConnect(deps.connstr)))();
  } catch (err) {
    throw withContext("connecting to postgres", err);
  }
  let lsnWaitTimeMs: number;
  let pgPromoteTimeMs: number;
  // Reconfigure time counts from pg_promote's return (the read-only check included), as upstream.
  let reconfigureStart: number;
  try {
    let t0 = performance.now();
    await waitForReplay(sql, primaryLsn, deps.retryIntervalMs ?? 1000);
    lsnWaitTimeMs = elapsedMs(t0);
    t0 = performance.now();

    // The raw spec field, as the reference: a list given only in settings is not used here.
    const safekeepers = next.spec.safekeeper_connstrings.join(",");
    await exec(
      sql,
      `ALTER SYSTEM SET neon.safekeepers=${literal(safekeepers)}`,
      "setting safekeepers",
    );
    await exec(
      sql,
      "ALTER SYSTEM SET synchronous_standby_names=walproposer",
      "setting synchronous_standby_names",
    );
    await exec(sql, "SELECT pg_catalog.pg_reload_conf()", "reloading postgres config");

    if (failpoint("compute-promotion")) throw new Error("compute-promotion failpoint");

    const promoted = await queryOne(sql, "SELECT * FROM pg_catalog.pg_promote()", "pg_promote");
    if (promoted !== true && promoted !== "t") throw new Error("pg_promote() failed");
    pgPromoteTimeMs = elapsedMs(t0);
    reconfigureStart = performance.now();

    const readOnly = await queryOne(
      sql,
      "SHOW transaction_read_only",
      "getting transaction_read_only",
    );
    if (readOnly === "on") throw new Error("replica in read only mode after promotion");
  } finally {
    await sql.close().catch(() => {});
  }

  const testing = deps.testing ?? failpointsEnabled;
  const adopted = testing() ? keepOwnPort(current, next) : next;
  log.info("applied new spec, reconfiguring as primary");
  await deps.lifecycle.adoptPromotedSpec(adopted);
  return {
    status: "completed",
    lsn_wait_time_ms: lsnWaitTimeMs,
    pg_promote_time_ms: pgPromoteTimeMs,
    reconfigure_time_ms: elapsedMs(reconfigureStart),
  };
}

/**
 * Promotes this compute to the primary described by `next` once the replica has replayed up to
 * `walFlushLsn`. Resolves with the state of the one promotion this process runs; never rejects.
 */
export function promote(
  deps: PromoteDeps,
  next: ParsedSpec,
  walFlushLsn: bigint,
): Promise<PromoteState> {
  const existing = deps.lifecycle.promotion;
  if (existing) return existing;
  const run = promoteOnce(deps, next, walFlushLsn).catch((err: unknown): PromoteState => {
    const error = formatOneLine(err);
    log.error("promoting replica", { error });
    return { status: "failed", error };
  });
  deps.lifecycle.promotion = run;
  return run;
}
