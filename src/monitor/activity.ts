// The activity monitor: while the compute runs, polls the local Postgres every 500 ms for signs
// of user activity and moves `last_active` (which the control plane reads to decide when to
// suspend) forward; while Postgres cannot be reached it reports downtime. Behaviour follows the
// reference's monitor.rs; the deliberate differences are marked "Differs:".
import type { Sql } from "postgres";
import { type ComputeStatus, displayStatus } from "../api/status.ts";
import { formatOneLine } from "../errors.ts";
import { log as rootLog } from "../log.ts";
import type { Metrics } from "../metrics/registry.ts";
import { localClient } from "../postgres/client.ts";
import { nowMicros } from "../util/clock.ts";

export const MONITOR_INTERVAL_MS = 500;
export const ACTIVITY_MONITOR_EXPERIMENTAL = "activity_monitor_experimental";

/** Statuses in which the monitor gives up for good, as the reference's check_interrupts. */
const STOP_STATUSES: readonly ComputeStatus[] = [
  "terminated",
  "termination_pending_fast",
  "termination_pending_immediate",
  "failed",
];

// Differs: the reference spells `pg_catalog.coalesce(...)`, which is not a function (COALESCE is
// syntax), so with the experimental feature every check failed and counted as downtime. Plain
// COALESCE is what it meant.
const DATABASE_STATS_QUERY = `SELECT COALESCE(pg_catalog.sum(active_time), 0.0)::pg_catalog.float8 AS total_active_time,
  COALESCE(pg_catalog.sum(sessions), 0)::pg_catalog.int8::pg_catalog.text AS total_sessions
FROM pg_catalog.pg_stat_database
WHERE datname OPERATOR(pg_catalog.<>) ALL (ARRAY['postgres', 'template0', 'template1']::pg_catalog.name[])`;

// Differs: the reference renders state_change with to_char(...) and appends "Z", which is right
// only when the session TimeZone is UTC; the epoch in µs is exact whatever the TimeZone.
const BACKENDS_QUERY = `SELECT state,
  (pg_catalog.extract('epoch'::pg_catalog.text, state_change) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8::pg_catalog.text AS state_change_us
FROM pg_catalog.pg_stat_activity
WHERE backend_type OPERATOR(pg_catalog.=) 'client backend'::pg_catalog.text
  AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
  AND usename OPERATOR(pg_catalog.<>) 'cloud_admin'::pg_catalog.name`;

// The walproposer does not show up in pg_stat_replication today; the filter guards the future.
const WALSENDERS_QUERY = `SELECT pg_catalog.count(*)::pg_catalog.text AS count FROM pg_catalog.pg_stat_replication
WHERE application_name OPERATOR(pg_catalog.<>) 'walproposer'::pg_catalog.text`;

// `pid IS NOT NULL` leaves out subscriptions whose worker is not running (read-only computes,
// branches).
const SUBSCRIPTIONS_QUERY = `SELECT pg_catalog.count(*)::pg_catalog.text AS count FROM pg_catalog.pg_stat_subscription
WHERE pid IS NOT NULL`;

const AUTOVACUUM_QUERY = `SELECT pg_catalog.count(*)::pg_catalog.text AS count FROM pg_catalog.pg_stat_activity
WHERE backend_type OPERATOR(pg_catalog.=) 'autovacuum worker'::pg_catalog.text`;

/** What the monitor needs of the compute: its status, and where it reports user activity. */
export interface MonitoredCompute {
  readonly status: ComputeStatus;
  waitFor(statuses: readonly ComputeStatus[]): Promise<unknown>;
  onChange(listener: (to: ComputeStatus) => void): () => void;
  /** Records the last user activity (µs since epoch); false when a later one is recorded. */
  noteActivity(micros: number): boolean;
}

export interface ActivityMonitorOptions {
  connstr: URL;
  state: MonitoredCompute;
  metrics: Metrics;
  /** The spec's `features`; `activity_monitor_experimental` adds the database-stats rule. */
  features?: string[];
  intervalMs?: number;
}

export interface ActivityMonitor {
  /** Ends the loop (and any query in flight); `done` resolves once it has. */
  stop(): void;
  done: Promise<void>;
}

/** chrono's Display of a UTC time, as the reference's downtime_info prints `last_up`. */
function chronoUtc(micros: number): string {
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  const frac = String(micros % 1_000_000).padStart(6, "0");
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${frac} UTC`;
}

/** Throws `message: cause` the way anyhow's context chain reads. */
function context(message: string, cause: unknown): Error {
  return new Error(message, { cause });
}

async function count(sql: Sql, query: string): Promise<number> {
  const rows = await sql.unsafe(query);
  const n = Number(rows[0]?.count);
  if (!Number.isFinite(n)) throw new Error(`unexpected count ${JSON.stringify(rows[0]?.count)}`);
  return n;
}

/**
 * Starts the monitor. It waits until the compute is `running` (start-up and configuration connect
 * to every database, which is not user activity), then polls; it ends on a terminal status
 * (terminated, termination pending, failed) or stop(). Nothing escapes the loop.
 */
export function startActivityMonitor(opts: ActivityMonitorOptions): ActivityMonitor {
  const { connstr, state, metrics } = opts;
  const intervalMs = opts.intervalMs ?? MONITOR_INTERVAL_MS;
  const experimental = (opts.features ?? []).includes(ACTIVITY_MONITOR_EXPERIMENTAL);
  const log = rootLog.span("compute_monitor");
  const stopper = new AbortController();

  // Monitor-local state, as the reference keeps it apart from the compute's.
  let lastActive: number | null = null;
  let lastChecked = nowMicros();
  let lastUp = lastChecked;
  let activeTime: number | null = null;
  let sessions: number | null = null;
  let downtimeTotalMs = 0;
  let currentDowntimeMs = 0;

  const downtimeInfo = () =>
    `total_ms: ${downtimeTotalMs}, current_ms: ${currentDowntimeMs}, last_up: ${chronoUtc(lastUp)}`;

  const reportDown = () => {
    const now = nowMicros();
    currentDowntimeMs = Math.max(0, Math.floor((now - lastUp) / 1000));
    metrics.pgCurrentDowntimeMs.set(currentDowntimeMs);
    const inc = Math.max(0, Math.floor((now - lastChecked) / 1000));
    downtimeTotalMs += inc;
    metrics.pgDowntimeMsTotal.inc(inc);
  };

  const reportUp = () => {
    lastUp = nowMicros();
    currentDowntimeMs = 0;
    metrics.pgCurrentDowntimeMs.set(0);
  };

  const interrupted = (): boolean => {
    if (stopper.signal.aborted) return true;
    if (STOP_STATUSES.includes(state.status)) {
      log.info(`compute is in ${displayStatus(state.status)} status, stopping compute monitor`);
      return true;
    }
    return false;
  };

  /** One poll: the first rule that fires sets the monitor's last_active and ends it. */
  const check = async (sql: Sql): Promise<void> => {
    if (experimental) {
      let rows: Awaited<ReturnType<Sql["unsafe"]>>;
      try {
        rows = await sql.unsafe(DATABASE_STATS_QUERY);
      } catch (err) {
        throw context("could not get database statistics", err);
      }
      const at = Number(rows[0]?.total_active_time);
      const ss = Number(rows[0]?.total_sessions);
      // Any change counts, down included (a dropped database is still user activity); the
      // first poll only records.
      const changed =
        (activeTime !== null && at !== activeTime) || (sessions !== null && ss !== sessions);
      activeTime = at;
      sessions = ss;
      if (changed) {
        lastActive = nowMicros();
        return;
      }
    }

    let backends: Awaited<ReturnType<Sql["unsafe"]>>;
    try {
      backends = await sql.unsafe(BACKENDS_QUERY);
    } catch (err) {
      throw context("could not get backends state change", err);
    }
    let latest: number | null = null;
    for (const b of backends) {
      if (b.state === null || b.state === undefined) continue;
      if (b.state !== "idle") {
        // A backend that is doing something: the activity is now.
        latest = nowMicros();
        break;
      }
      const t = Number(b.state_change_us);
      if (b.state_change_us === null || !Number.isFinite(t)) continue;
      if (latest === null || t > latest) latest = t;
    }
    if (latest !== null && (lastActive === null || latest > lastActive)) {
      lastActive = latest;
      return;
    }

    const rules: [string, string][] = [
      [WALSENDERS_QUERY, "failed to get list of walsenders"],
      [SUBSCRIPTIONS_QUERY, "failed to get list of active logical replication subscriptions"],
      [AUTOVACUUM_QUERY, "failed to get list of autovacuum workers"],
    ];
    for (const [query, what] of rules) {
      let n: number;
      try {
        n = await count(sql, query);
      } catch (err) {
        throw context(what, err);
      }
      if (n > 0) {
        lastActive = nowMicros();
        return;
      }
    }
  };

  /** Resolves after `ms`, early on stop() or a terminal status. */
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (stopper.signal.aborted) return resolve();
      const finish = () => {
        clearTimeout(timer);
        stopper.signal.removeEventListener("abort", finish);
        offChange();
        resolve();
      };
      const timer = setTimeout(finish, ms);
      stopper.signal.addEventListener("abort", finish, { once: true });
      const offChange = state.onChange((to) => {
        if (STOP_STATUSES.includes(to)) finish();
      });
    });

  const newClient = () =>
    localClient(connstr, { applicationName: "compute_ctl:compute_monitor", max: 1 });

  const run = async (): Promise<void> => {
    // Start-up connects to every database: that is not user activity, so wait for `running`.
    if (state.status !== "running") {
      log.info("compute is not running, waiting before monitoring activity");
      const aborted = new Promise<void>((resolve) =>
        stopper.signal.addEventListener("abort", () => resolve(), { once: true }),
      );
      await Promise.race([state.waitFor(["running", ...STOP_STATUSES]), aborted]);
    }
    // Differs: the reference starts the downtime clocks when the thread is launched, before
    // Postgres starts, so a failure on the first poll counted the whole start-up as downtime.
    lastChecked = nowMicros();
    lastUp = lastChecked;

    // One connection, kept across polls; connecting is a step of its own so that a failure
    // there reads "could not connect" and one in a query "could not check", as in the reference.
    let conn: Sql | null = null;
    const dropConnection = () => {
      const old = conn;
      conn = null;
      if (old) void old.end({ timeout: 0 }).catch(() => {});
    };
    stopper.signal.addEventListener("abort", dropConnection, { once: true });

    log.info(`starting compute monitor for ${connstr.href}`);
    try {
      while (!interrupted()) {
        if (!conn) {
          // postgres.js connects lazily: a trivial query is the connect step.
          const fresh = newClient();
          conn = fresh;
          try {
            await fresh.unsafe("SELECT 1");
          } catch (err) {
            if (stopper.signal.aborted) break;
            log.info(`could not connect to Postgres: ${formatOneLine(err)}, retrying`, {
              downtime_info: downtimeInfo(),
            });
            if (interrupted()) break;
            reportDown();
            dropConnection();
          }
        }
        if (conn) {
          try {
            await check(conn);
            reportUp();
            if (lastActive !== null && state.noteActivity(lastActive)) {
              log.debug(`set the last compute activity time to: ${lastActive}`);
            }
          } catch (err) {
            if (stopper.signal.aborted) break;
            log.error(`could not check Postgres: ${formatOneLine(err)}`, {
              downtime_info: downtimeInfo(),
            });
            if (interrupted()) break;
            reportDown();
            // Reconnect after any failure, as the reference does: a broken connection does not
            // always say so.
            dropConnection();
          }
        }
        lastChecked = nowMicros();
        await pause(intervalMs);
      }
    } finally {
      stopper.signal.removeEventListener("abort", dropConnection);
      dropConnection();
    }
  };

  const done = run().then(
    () => log.info("compute monitor thread terminated gracefully"),
    (err) => log.error(`compute monitor thread terminated abnormally ${formatOneLine(err)}`),
  );

  return {
    stop: () => stopper.abort(),
    done,
  };
}
