// The activity monitor against a real Postgres 15: which sessions move last_active and which do
// not, monotonicity, the downtime metrics while Postgres is down, and when the monitor stops.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Sql } from "postgres";
import { ComputeState } from "../../../src/compute/state.ts";
import { configureLogging, parseLevelFilter } from "../../../src/log.ts";
import { createMetrics, type Metrics } from "../../../src/metrics/registry.ts";
import { startActivityMonitor } from "../../../src/monitor/activity.ts";
import { nowMicros } from "../../../src/util/clock.ts";
import { PG_BINDIR, startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { freePort } from "../../support/ports.ts";
import { cleanup, collectStream, makeUserDir, spawnAs, waitFor } from "../../support/proc.ts";

const POLL_MS = 100;

afterAll(cleanup);

function runningState(metrics: Metrics): ComputeState {
  const state = new ComputeState(metrics);
  state.set("init");
  state.set("running");
  return state;
}

async function metricValue(m: { get(): Promise<{ values: { value: number }[] }> }) {
  return (await m.get()).values[0]?.value ?? 0;
}

/** Captures log lines at info level until the returned function is called. */
function captureLogs(): { lines: string[]; restore(): void } {
  const lines: string[] = [];
  configureLogging({ level: "info", sink: { write: (t) => lines.push(t) } });
  return {
    lines,
    restore: () =>
      configureLogging({
        level: process.env.TEST_LOG ? parseLevelFilter(process.env.TEST_LOG) : "warn",
        sink: { write: (t) => process.stderr.write(t) },
      }),
  };
}

/** Lets the monitor run a few polls. */
const somePolls = () => Bun.sleep(POLL_MS * 5);

describe("activity rules", () => {
  let pg: TestPostgres;
  let connstr: URL;

  beforeAll(async () => {
    // No autovacuum: a worker showing up would move last_active at a random moment.
    pg = await startTestPostgres({ settings: { autovacuum: "off", wal_level: "logical" } });
    connstr = new URL(pg.url);
    await pg.sql.unsafe("CREATE ROLE alice LOGIN");
  });

  afterAll(async () => {
    await pg?.stop();
  });

  async function monitorBackendPresent(): Promise<boolean> {
    const rows = await pg.sql.unsafe(
      "SELECT 1 FROM pg_stat_activity WHERE application_name = 'compute_ctl:compute_monitor'",
    );
    return rows.length > 0;
  }

  /** alice's state_change in µs since the epoch, as the server has it. */
  async function aliceStateChange(): Promise<number> {
    const rows = await pg.sql.unsafe(
      "SELECT (extract(epoch FROM state_change) * 1000000)::int8::text AS t FROM pg_stat_activity WHERE usename = 'alice' AND state = 'idle'",
    );
    expect(rows.length).toBe(1);
    return Number(rows[0]?.t);
  }

  test("waits for running, and cloud_admin activity never moves last_active", async () => {
    const metrics = createMetrics();
    const state = new ComputeState(metrics);
    state.set("init");
    const mon = startActivityMonitor({ connstr, state, metrics, intervalMs: POLL_MS });
    try {
      await somePolls();
      // Not running yet: no connection at all.
      expect(await monitorBackendPresent()).toBe(false);
      state.set("running");
      await waitFor(monitorBackendPresent, { what: "the monitor's connection", timeoutMs: 10_000 });
      // An active and then idle cloud_admin session (a second one, besides pg.sql's).
      const admin = pg.connect();
      await admin.unsafe("SELECT pg_sleep(0.6)");
      await somePolls();
      await admin.end();
      expect(state.lastActiveMicros).toBeNull();
      expect(await metricValue(metrics.pgCurrentDowntimeMs)).toBe(0);
      expect(await metricValue(metrics.pgDowntimeMsTotal)).toBe(0);
    } finally {
      mon.stop();
      await mon.done;
    }
  });

  test("a second login role moves last_active: now while active, its state_change once idle", async () => {
    const metrics = createMetrics();
    const state = runningState(metrics);
    const seen: number[] = [];
    const sampler = setInterval(() => {
      if (state.lastActiveMicros !== null) seen.push(state.lastActiveMicros);
    }, 20);
    const mon = startActivityMonitor({ connstr, state, metrics, intervalMs: POLL_MS });
    const alice = pg.connect({ user: "alice" });
    try {
      await waitFor(monitorBackendPresent, { what: "the monitor's connection", timeoutMs: 10_000 });
      expect(state.lastActiveMicros).toBeNull();
      const before = nowMicros();
      // postgres.js sends a query only once awaited, unless told to now.
      const query = alice.unsafe("SELECT pg_sleep(1)").execute();
      // While the query runs, last_active is "now" at each poll.
      const whileActive = await waitFor(
        () => (state.lastActiveMicros !== null ? state.lastActiveMicros : null),
        { what: "last_active during alice's query", timeoutMs: 5_000 },
      );
      expect(whileActive).toBeGreaterThanOrEqual(before);
      await query;
      // Idle: last_active settles on the time alice's query ended.
      const ended = await aliceStateChange();
      await waitFor(() => state.lastActiveMicros === ended, {
        what: "last_active to be alice's state_change",
        timeoutMs: 5_000,
      });
      expect(ended).toBeGreaterThan(whileActive);
      // Staying idle moves nothing.
      await somePolls();
      expect(state.lastActiveMicros).toBe(ended);
      // A new query, then idle again: it moves forward to the new state_change.
      await alice.unsafe("SELECT 1");
      const ended2 = await aliceStateChange();
      expect(ended2).toBeGreaterThan(ended);
      await waitFor(() => state.lastActiveMicros === ended2, {
        what: "last_active to follow alice's second query",
        timeoutMs: 5_000,
      });
      // Never backwards, at any moment we looked.
      for (let i = 1; i < seen.length; i++) {
        expect(seen[i]!).toBeGreaterThanOrEqual(seen[i - 1]!);
      }
    } finally {
      clearInterval(sampler);
      await alice.end();
      mon.stop();
      await mon.done;
    }
  });

  test("last_active never moves backwards from a later value", async () => {
    const metrics = createMetrics();
    const state = runningState(metrics);
    const future = nowMicros() + 3_600_000_000;
    state.lastActiveMicros = future;
    const mon = startActivityMonitor({ connstr, state, metrics, intervalMs: POLL_MS });
    const alice = pg.connect({ user: "alice" });
    try {
      await waitFor(monitorBackendPresent, { what: "the monitor's connection", timeoutMs: 10_000 });
      await alice.unsafe("SELECT pg_sleep(0.5)");
      await somePolls();
      expect(state.lastActiveMicros).toBe(future);
    } finally {
      await alice.end();
      mon.stop();
      await mon.done;
    }
  });

  test("walsenders count, except the walproposer", async () => {
    const metrics = createMetrics();
    const state = runningState(metrics);
    const mon = startActivityMonitor({ connstr, state, metrics, intervalMs: POLL_MS });
    const walsender = (appName: string) => {
      // psql waits on its (open) stdin, so the walsender stays connected and idle until killed.
      const p = spawnAs(
        [
          `${PG_BINDIR}/psql`,
          "-X",
          "-q",
          "-d",
          `host=127.0.0.1 port=${pg.port} user=cloud_admin dbname=postgres replication=database application_name=${appName}`,
        ],
        { stdin: "pipe" },
      );
      collectStream(p.stdout);
      collectStream(p.stderr);
      return p;
    };
    const walsenderCount = async (appName: string) =>
      (
        await pg.sql.unsafe(
          `SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = '${appName}'`,
        )
      )[0]?.n as number;
    try {
      await waitFor(monitorBackendPresent, { what: "the monitor's connection", timeoutMs: 10_000 });
      const wp = walsender("walproposer");
      await waitFor(async () => (await walsenderCount("walproposer")) === 1, {
        what: "the walproposer walsender",
        timeoutMs: 10_000,
      });
      await somePolls();
      expect(state.lastActiveMicros).toBeNull();

      const other = walsender("some_replica");
      await waitFor(async () => (await walsenderCount("some_replica")) === 1, {
        what: "the other walsender",
        timeoutMs: 10_000,
      });
      const first = await waitFor(() => state.lastActiveMicros, {
        what: "last_active from the walsender",
        timeoutMs: 5_000,
      });
      // It is "now" on every poll while the walsender lives.
      await waitFor(() => (state.lastActiveMicros ?? 0) > first, {
        what: "last_active to keep moving",
        timeoutMs: 5_000,
      });
      for (const p of [wp, other]) {
        p.kill("SIGTERM");
        await Promise.race([p.exited, Bun.sleep(5_000)]);
      }
      await waitFor(async () => (await walsenderCount("some_replica")) === 0, {
        what: "the walsender to go",
        timeoutMs: 10_000,
      });
      await somePolls();
      const settled = state.lastActiveMicros;
      await somePolls();
      expect(state.lastActiveMicros).toBe(settled);
    } finally {
      mon.stop();
      await mon.done;
    }
  });

  test("an active logical subscription counts", async () => {
    // Named walproposer so that its walsender does not count: only the subscription rule fires.
    await pg.sql.unsafe("CREATE DATABASE pubdb");
    await pg.sql.unsafe("CREATE DATABASE subdb");
    const pub = pg.connect({ database: "pubdb" });
    const sub = pg.connect({ database: "subdb" });
    const metrics = createMetrics();
    const state = runningState(metrics);
    let mon: ReturnType<typeof startActivityMonitor> | undefined;
    try {
      await pub.unsafe("CREATE TABLE t (id int primary key)");
      await pub.unsafe("CREATE PUBLICATION p FOR TABLE t");
      await pub.unsafe("SELECT pg_create_logical_replication_slot('walproposer', 'pgoutput')");
      await sub.unsafe("CREATE TABLE t (id int primary key)");
      // In one cluster CREATE SUBSCRIPTION cannot create its slot itself (it would wait on its
      // own transaction), hence the slot made above.
      await sub.unsafe(
        `CREATE SUBSCRIPTION walproposer CONNECTION 'host=127.0.0.1 port=${pg.port} user=cloud_admin dbname=pubdb' PUBLICATION p WITH (create_slot = false, slot_name = 'walproposer', copy_data = false)`,
      );
      await waitFor(
        async () =>
          (await pg.sql.unsafe("SELECT 1 FROM pg_stat_subscription WHERE pid IS NOT NULL")).length >
          0,
        { what: "the subscription's apply worker", timeoutMs: 15_000 },
      );
      mon = startActivityMonitor({ connstr, state, metrics, intervalMs: POLL_MS });
      const first = await waitFor(() => state.lastActiveMicros, {
        what: "last_active from the subscription",
        timeoutMs: 5_000,
      });
      await waitFor(() => (state.lastActiveMicros ?? 0) > first, {
        what: "last_active to keep moving",
        timeoutMs: 5_000,
      });
      await sub.unsafe("ALTER SUBSCRIPTION walproposer DISABLE");
      await waitFor(
        async () =>
          (await pg.sql.unsafe("SELECT 1 FROM pg_stat_subscription WHERE pid IS NOT NULL"))
            .length === 0,
        { what: "the apply worker to stop", timeoutMs: 15_000 },
      );
      await somePolls();
      const settled = state.lastActiveMicros;
      await somePolls();
      expect(state.lastActiveMicros).toBe(settled);
    } finally {
      mon?.stop();
      await mon?.done;
      await sub
        .unsafe("ALTER SUBSCRIPTION walproposer SET (slot_name = NONE)")
        .catch(() => undefined);
      await sub.unsafe("DROP SUBSCRIPTION IF EXISTS walproposer").catch(() => undefined);
      await pub.end();
      await sub.end();
    }
  });

  test("activity_monitor_experimental: database stats changes count, and the query works", async () => {
    await pg.sql.unsafe("CREATE DATABASE appdb");
    const metrics = createMetrics();
    const state = runningState(metrics);
    const logs = captureLogs();
    const mon = startActivityMonitor({
      connstr,
      state,
      metrics,
      features: ["activity_monitor_experimental"],
      intervalMs: POLL_MS,
    });
    let app: Sql | undefined;
    try {
      await waitFor(monitorBackendPresent, { what: "the monitor's connection", timeoutMs: 10_000 });
      await somePolls();
      // The first poll only records; nothing else is going on.
      expect(state.lastActiveMicros).toBeNull();
      // Even cloud_admin counts here: a new session in a user database changes the stats.
      app = pg.connect({ database: "appdb" });
      await app.unsafe("SELECT 1");
      await waitFor(() => state.lastActiveMicros, {
        what: "last_active from the database stats",
        timeoutMs: 15_000,
      });
      // The reference's pg_catalog.coalesce failed every poll; plain COALESCE does not.
      expect(await metricValue(metrics.pgDowntimeMsTotal)).toBe(0);
      expect(logs.lines.join("")).not.toContain("could not check Postgres");
    } finally {
      await app?.end();
      mon.stop();
      await mon.done;
      logs.restore();
    }
  });

  test("stops on termination pending, failed and stop(), also before running", async () => {
    for (const end of ["termination_pending_fast", "failed"] as const) {
      const metrics = createMetrics();
      const state = runningState(metrics);
      const mon = startActivityMonitor({ connstr, state, metrics, intervalMs: POLL_MS });
      await waitFor(monitorBackendPresent, { what: "the monitor's connection", timeoutMs: 10_000 });
      state.set(end);
      const r = await Promise.race([mon.done.then(() => "done"), Bun.sleep(5_000)]);
      expect(r).toBe("done");
      // Its connection is closed on the way out.
      await waitFor(async () => !(await monitorBackendPresent()), {
        what: "the monitor's connection to close",
        timeoutMs: 5_000,
      });
    }
    {
      const metrics = createMetrics();
      const state = new ComputeState(metrics);
      const mon = startActivityMonitor({ connstr, state, metrics, intervalMs: POLL_MS });
      mon.stop();
      const r = await Promise.race([mon.done.then(() => "done"), Bun.sleep(5_000)]);
      expect(r).toBe("done");
    }
    {
      const metrics = createMetrics();
      const state = runningState(metrics);
      const mon = startActivityMonitor({ connstr, state, metrics, intervalMs: POLL_MS });
      await waitFor(monitorBackendPresent, { what: "the monitor's connection", timeoutMs: 10_000 });
      mon.stop();
      const r = await Promise.race([mon.done.then(() => "done"), Bun.sleep(5_000)]);
      expect(r).toBe("done");
    }
  });
});

/** A Postgres of our own that can be stopped and started again on the same port and PGDATA. */
async function ownPostgres() {
  const dir = await makeUserDir("monitor-pg-");
  const pgdata = join(dir, "data");
  const port = await freePort();
  const init = spawnAs([
    `${PG_BINDIR}/initdb`,
    "-D",
    pgdata,
    "-U",
    "cloud_admin",
    "--auth=trust",
    "--no-sync",
  ]);
  const initErr = collectStream(init.stderr);
  collectStream(init.stdout);
  if ((await init.exited) !== 0) throw new Error(`initdb failed: ${initErr.text}`);
  let proc: ReturnType<typeof spawnAs> | null = null;
  return {
    url: new URL(`postgresql://cloud_admin@127.0.0.1:${port}/postgres`),
    async start() {
      const p = spawnAs([
        `${PG_BINDIR}/postgres`,
        "-D",
        pgdata,
        "-c",
        `port=${port}`,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        `unix_socket_directories=${dir}`,
        "-c",
        "fsync=off",
      ]);
      const err = collectStream(p.stderr, { prefix: "[monitor postgres] " });
      collectStream(p.stdout);
      proc = p;
      await waitFor(
        async () => {
          if (p.exitCode !== null) throw new Error(`postgres exited: ${err.text.slice(-1000)}`);
          const pid = await Bun.file(join(pgdata, "postmaster.pid"))
            .text()
            .catch(() => "");
          return pid.trimEnd().split("\n").at(-1)?.trim() === "ready";
        },
        { what: "postgres to be ready", timeoutMs: 30_000 },
      );
    },
    async stop() {
      const p = proc;
      proc = null;
      if (!p) return;
      p.kill("SIGINT");
      const r = await Promise.race([p.exited.then(() => "exited"), Bun.sleep(15_000)]);
      if (r !== "exited") {
        p.kill("SIGKILL");
        await p.exited;
      }
    },
  };
}

describe("downtime", () => {
  test("both metrics grow while Postgres is down; the total keeps the sum once it is back", async () => {
    const own = await ownPostgres();
    await own.start();
    const metrics = createMetrics();
    const state = runningState(metrics);
    const logs = captureLogs();
    const mon = startActivityMonitor({ connstr: own.url, state, metrics, intervalMs: POLL_MS });
    try {
      await Bun.sleep(POLL_MS * 3);
      expect(await metricValue(metrics.pgCurrentDowntimeMs)).toBe(0);
      expect(await metricValue(metrics.pgDowntimeMsTotal)).toBe(0);

      const downAt = Date.now();
      await own.stop();
      await waitFor(async () => (await metricValue(metrics.pgCurrentDowntimeMs)) >= 500, {
        what: "current downtime to pass 500 ms",
        timeoutMs: 10_000,
      });
      const current1 = await metricValue(metrics.pgCurrentDowntimeMs);
      await waitFor(async () => (await metricValue(metrics.pgCurrentDowntimeMs)) > current1, {
        what: "current downtime to grow",
        timeoutMs: 5_000,
      });
      const totalDown = await metricValue(metrics.pgDowntimeMsTotal);
      expect(totalDown).toBeGreaterThan(0);
      // Neither can exceed the time since Postgres went down by more than one poll plus slack.
      expect(await metricValue(metrics.pgCurrentDowntimeMs)).toBeLessThanOrEqual(
        Date.now() - downAt + POLL_MS + 1000,
      );
      expect(logs.lines.some((l) => l.includes("downtime_info="))).toBe(true);
      expect(logs.lines.join("")).toMatch(
        /downtime_info="total_ms: \d+, current_ms: \d+, last_up: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC"/,
      );

      await own.start();
      await waitFor(async () => (await metricValue(metrics.pgCurrentDowntimeMs)) === 0, {
        what: "current downtime back to 0",
        timeoutMs: 15_000,
      });
      const totalAfter = await metricValue(metrics.pgDowntimeMsTotal);
      expect(totalAfter).toBeGreaterThanOrEqual(totalDown);
      await Bun.sleep(POLL_MS * 3);
      // Up again: the total stays where it was.
      expect(await metricValue(metrics.pgDowntimeMsTotal)).toBe(totalAfter);
      expect(await metricValue(metrics.pgCurrentDowntimeMs)).toBe(0);
    } finally {
      mon.stop();
      await mon.done;
      logs.restore();
      await own.stop();
    }
  });
});
