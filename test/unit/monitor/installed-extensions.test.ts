// Installed-extensions statistics against a real Postgres 15, and the periodic task's interval
// rules with an injected sleep.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { configureLogging, parseLevelFilter } from "../../../src/log.ts";
import { createMetrics, exposition } from "../../../src/metrics/registry.ts";
import {
  collectInstalledExtensions,
  collectionIntervalFromSpec,
  reportInstalledExtensions,
  startInstalledExtensionsTask,
} from "../../../src/monitor/installed-extensions.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { freePort } from "../../support/ports.ts";
import { cleanup, waitFor } from "../../support/proc.ts";

afterAll(cleanup);

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

describe("collectInstalledExtensions", () => {
  let pg: TestPostgres;
  let connstr: URL;

  beforeAll(async () => {
    pg = await startTestPostgres();
    connstr = new URL(pg.url);
    const s = pg.sql;
    await s.unsafe("CREATE ROLE alice LOGIN");
    for (const db of ["db1", "db2", "closed", "broken"]) await s.unsafe(`CREATE DATABASE ${db}`);
    await s.unsafe("GRANT CREATE ON DATABASE db2 TO alice");
    // hstore in db1 (owned by the bootstrap superuser), and in the two databases that must be
    // skipped: counted there, it would show up as 3.
    for (const db of ["db1", "closed", "broken"]) await pg.psql("CREATE EXTENSION hstore", db);
    // citext is trusted: alice may create it, and then she owns it.
    const alice = pg.connect({ user: "alice", database: "db2" });
    await alice.unsafe("CREATE EXTENSION citext");
    await alice.end();
    await s.unsafe("ALTER DATABASE closed ALLOW_CONNECTIONS false");
    // What an interrupted DROP DATABASE leaves behind: connections to it are refused.
    await s.unsafe("UPDATE pg_database SET datconnlimit = -2 WHERE datname = 'broken'");
  });

  afterAll(async () => {
    await pg?.stop();
  });

  test("counts databases per extension, version and owner; sets the gauge; logs NEON_EXT_STAT", async () => {
    const metrics = createMetrics();
    const logs = captureLogs();
    let result: Awaited<ReturnType<typeof collectInstalledExtensions>>;
    try {
      result = await collectInstalledExtensions(connstr, metrics);
    } finally {
      logs.restore();
    }
    const sorted = [...result.extensions].sort((a, b) => a.extname.localeCompare(b.extname));
    // plpgsql is in every database that takes connections: postgres, template1, db1, db2.
    expect(sorted).toEqual([
      { extname: "citext", version: "1.6", n_databases: 1, owned_by_superuser: "0" },
      { extname: "hstore", version: "1.8", n_databases: 1, owned_by_superuser: "1" },
      { extname: "plpgsql", version: "1.0", n_databases: 4, owned_by_superuser: "1" },
    ]);

    const text = await exposition(metrics.registry);
    expect(text).toContain("# TYPE compute_installed_extensions gauge\n");
    expect(text).toContain(
      'compute_installed_extensions{extension_name="plpgsql",version="1.0",owned_by_superuser="1"} 4\n',
    );
    expect(text).toContain(
      'compute_installed_extensions{extension_name="hstore",version="1.8",owned_by_superuser="1"} 1\n',
    );
    expect(text).toContain(
      'compute_installed_extensions{extension_name="citext",version="1.6",owned_by_superuser="0"} 1\n',
    );

    const stat = logs.lines.filter((l) => l.includes("[NEON_EXT_STAT] "));
    expect(stat.length).toBe(1);
    expect(stat[0]).toMatch(/ INFO \[NEON_EXT_STAT\] \{/);
    const json = stat[0]!.slice(stat[0]!.indexOf("[NEON_EXT_STAT] ") + 16).trim();
    // The reference's InstalledExtensions serialisation, field order included.
    expect(json).toContain(
      '{"extname":"plpgsql","version":"1.0","n_databases":4,"owned_by_superuser":"1"}',
    );
    expect(JSON.parse(json)).toEqual({ extensions: result.extensions });
  });

  test("series of extensions that went away stay, as in the reference", async () => {
    const metrics = createMetrics();
    await pg.psql("CREATE EXTENSION pg_trgm", "db1");
    await collectInstalledExtensions(connstr, metrics);
    await pg.psql("DROP EXTENSION pg_trgm", "db1");
    const second = await collectInstalledExtensions(connstr, metrics);
    expect(second.extensions.map((e) => e.extname)).not.toContain("pg_trgm");
    expect(await exposition(metrics.registry)).toMatch(
      /compute_installed_extensions\{extension_name="pg_trgm",version="[\d.]+",owned_by_superuser="1"\} 1\n/,
    );
  });

  test("yieldTo is awaited before the listing and before each database; while it waits, no connection is open", async () => {
    const metrics = createMetrics();
    let calls = 0;
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const collecting = collectInstalledExtensions(connstr, metrics, {
      yieldTo: () => (++calls === 3 ? held : Promise.resolve()),
    });
    // The third call comes after the listing and the first database; the collection waits there.
    await waitFor(() => calls === 3, { what: "the third yield" });
    await Bun.sleep(100);
    expect(calls).toBe(3);
    const open = await pg.sql.unsafe(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'compute_ctl:get_installed_extensions'",
    );
    expect(open[0]?.n).toBe(0);
    release();
    const result = await collecting;
    // Once before the listing, then once per database that takes connections (4).
    expect(calls).toBe(5);
    expect(result.extensions.find((e) => e.extname === "plpgsql")?.n_databases).toBe(4);
  });

  test("a Postgres that cannot be reached: collect rejects, report logs and resolves", async () => {
    const metrics = createMetrics();
    const url = new URL(`postgresql://cloud_admin@127.0.0.1:${await freePort()}/postgres`);
    await expect(collectInstalledExtensions(url, metrics)).rejects.toThrow();
    const logs = captureLogs();
    try {
      await reportInstalledExtensions(url, metrics);
    } finally {
      logs.restore();
    }
    expect(logs.lines.some((l) => l.includes("could not get installed extensions: "))).toBe(true);
    expect(await exposition(metrics.registry)).not.toContain("compute_installed_extensions");
  });
});

describe("collectionIntervalFromSpec", () => {
  test("-1 and 0 mean the default hour, anything else is itself", () => {
    expect(collectionIntervalFromSpec(-1)).toBe(3600);
    expect(collectionIntervalFromSpec(0)).toBe(3600);
    expect(collectionIntervalFromSpec(300)).toBe(300);
    expect(collectionIntervalFromSpec(86_400)).toBe(86_400);
  });
});

/** An injected sleep the test releases by hand, recording what was asked. */
function manualSleep() {
  const asked: number[] = [];
  let release: (() => void) | null = null;
  return {
    asked,
    sleep: (ms: number, signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        asked.push(ms);
        release = resolve;
        signal.addEventListener("abort", () => resolve(), { once: true });
      }),
    /** Ends the sleep in progress. */
    wake() {
      const r = release;
      release = null;
      r?.();
    },
  };
}

describe("startInstalledExtensionsTask", () => {
  const connstr = new URL("postgresql://cloud_admin@127.0.0.1:1/postgres");

  test("sleeps first for twice the interval; the interval only grows", async () => {
    const s = manualSleep();
    let collected = 0;
    let shared = 3600;
    const task = startInstalledExtensionsTask({
      connstr,
      metrics: createMetrics(),
      intervalSeconds: () => shared,
      sleep: s.sleep,
      collect: async () => {
        collected++;
      },
    });
    try {
      const sleeps = (n: number) =>
        waitFor(() => s.asked.length === n, { what: `sleep #${n}`, timeoutMs: 2_000 });
      await sleeps(1);
      expect(s.asked).toEqual([7_200_000]);
      expect(collected).toBe(0);

      s.wake();
      await sleeps(2);
      expect(collected).toBe(1);
      expect(s.asked[1]).toBe(7_200_000);

      // A shorter shared interval (a spec with suspend_timeout_seconds = 60) never shortens it.
      shared = 60;
      s.wake();
      await sleeps(3);
      expect(s.asked[2]).toBe(7_200_000);

      // A longer one takes effect after the sleep in progress and its collection.
      task.bumpInterval(5000);
      expect(s.asked.length).toBe(3);
      s.wake();
      await sleeps(4);
      expect(collected).toBe(3);
      expect(s.asked[3]).toBe(10_000_000);

      // Stored values win over the getter, and max(current, 2 × new) still rules.
      task.bumpInterval(4000);
      shared = 100_000;
      s.wake();
      await sleeps(5);
      expect(s.asked[4]).toBe(10_000_000);
    } finally {
      task.stop();
      await task.done;
    }
  });

  test("a failing collection does not end the task; stop() ends it during a sleep", async () => {
    const s = manualSleep();
    let collected = 0;
    const logs = captureLogs();
    const task = startInstalledExtensionsTask({
      connstr,
      metrics: createMetrics(),
      intervalSeconds: () => 1,
      sleep: s.sleep,
      collect: async () => {
        collected++;
        throw new Error("boom");
      },
    });
    try {
      await waitFor(() => s.asked.length === 1, { what: "the first sleep", timeoutMs: 2_000 });
      s.wake();
      await waitFor(() => s.asked.length === 2, { what: "the second sleep", timeoutMs: 2_000 });
      expect(collected).toBe(1);
      expect(s.asked).toEqual([2000, 2000]);
      task.stop();
      const r = await Promise.race([task.done.then(() => "done"), Bun.sleep(2_000)]);
      expect(r).toBe("done");
      expect(collected).toBe(1);
    } finally {
      task.stop();
      logs.restore();
    }
    expect(logs.lines.join("")).toContain(
      "[NEON_EXT_SPAWN] Spawning background installed extensions worker with Timeout: 2",
    );
    expect(logs.lines.join("")).toContain("[NEON_EXT_INT_SLEEP]: Interval: 2");
  });

  test("with the real sleep, stop() ends a long wait at once", async () => {
    let collected = 0;
    const task = startInstalledExtensionsTask({
      connstr,
      metrics: createMetrics(),
      intervalSeconds: () => 3600,
      collect: async () => {
        collected++;
      },
    });
    await Bun.sleep(50);
    task.stop();
    const r = await Promise.race([task.done.then(() => "done"), Bun.sleep(2_000)]);
    expect(r).toBe("done");
    expect(collected).toBe(0);
  });
});
