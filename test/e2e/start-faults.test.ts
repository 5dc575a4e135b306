// The start path when things go wrong, and every way a running compute ends. Each test checks
// the exit code and that no Postgres or sync-safekeepers process is left behind.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { jsonOf } from "../support/compute.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import {
  expectNothingLeft,
  psql,
  type Started,
  start,
  statusOf,
  terminate,
  waitStatus,
} from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

/** Timestamps (ms) of the log lines matching `re`. */
function logTimes(s: Started, re: RegExp): number[] {
  return s.compute.stderr.text
    .split("\n")
    .filter((l) => re.test(l))
    .map((l) => Date.parse(l.slice(0, 27)) + Number(l.slice(23, 26)) / 1000);
}

const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - (xs[i] ?? 0));

async function postmasterPid(s: Started): Promise<number> {
  const pid = await readFile(join(s.stack.pgdata, "postmaster.pid"), "utf8");
  return Number(pid.split("\n")[0]);
}

describe("configure from Empty", () => {
  test("the spec arrives by /configure: wait recorded, start_time reset, 200 with running", async () => {
    const s = await start({ viaConfigure: true, mode: "Replica" });
    const before = await statusOf(s);
    expect(before.status).toBe("empty");
    await Bun.sleep(700);
    const r = await s.compute.post("/configure", s.token, {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ spec: s.stack.spec, compute_ctl_config: { jwks: { keys: [] } } }),
    });
    expect(r.status).toBe(200);
    const body = await jsonOf(r);
    expect(body.status).toBe("running");
    expect(Date.parse(body.start_time)).toBeGreaterThan(Date.parse(before.start_time) + 600);
    const t = await jsonOf(s.compute.get("/metrics.json", s.token));
    expect(t.wait_for_spec_ms).toBeGreaterThanOrEqual(700);
    // Counted from the spec's arrival, so the wait is not in it.
    expect(t.total_startup_ms).toBeLessThan(Date.now() - Date.parse(before.start_time) - 600);
    expect(t.total_startup_ms).toBeGreaterThanOrEqual(t.start_postgres_ms);
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
  });
});

describe("basebackup faults", () => {
  test("refused connections are retried 500 ms, 750 ms apart, PGDATA kept, then the start succeeds", async () => {
    const s = await start({
      mode: "Replica",
      pageserverFaults: { refuseConnections: 2 },
      env: { NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: "10" },
    });
    await waitStatus(s, "running");
    const failures = logTimes(s, /Failed to get basebackup: .*\(attempt \d+\/10\)/);
    expect(failures).toHaveLength(2);
    const started = logTimes(s, /Changing compute status from init to running/);
    const [g1, g2] = gaps([...failures, ...started]);
    expect(g1).toBeGreaterThanOrEqual(480);
    expect(g1).toBeLessThan(900);
    expect(g2).toBeGreaterThanOrEqual(730);
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
  });

  for (const [name, faults, template, expected] of [
    [
      "an ErrorResponse after the data",
      { errorAfterData: true },
      {},
      "failed to get basebackup@0/0",
    ],
    ["a truncated gzip stream", { truncateGzip: true }, {}, "failed to get basebackup@0/0"],
    ["a tar without pg_dynshmem", {}, { withoutDynshmem: true }, "no pg_dynshmem"],
  ] as const) {
    test(`${name} fails the start: failed, exit 1, nothing left`, async () => {
      const s = await start({ mode: "Replica", pageserverFaults: faults, template });
      const st = await waitStatus(s, "failed");
      expect(st.error).toContain(expected);
      expect(await s.compute.exited).toBe(1);
      await expectNothingLeft(s);
    });
  }

  test("a slow pageserver is waited for", async () => {
    const s = await start({ mode: "Replica", pageserverFaults: { slowMs: 1000 } });
    await waitStatus(s, "running");
    const t = await jsonOf(s.compute.get("/metrics.json", s.token));
    expect(t.basebackup_ms).toBeGreaterThanOrEqual(1000);
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
  });
});

describe("how a running compute ends", () => {
  test("kill -9 of the postmaster: failed, shutdown sync, exit 1, nothing left", async () => {
    const s = await start();
    await waitStatus(s, "running");
    process.kill(await postmasterPid(s), "SIGKILL");
    const st = await waitStatus(s, "failed");
    expect(st.error).toContain("postgres exited unexpectedly");
    expect(await s.compute.exited).toBe(1);
    expect(await s.stack.pgbin.syncCalls()).toHaveLength(2);
    expect(s.compute.stderr.text).toContain("syncing safekeepers on shutdown");
    await expectNothingLeft(s);
  });

  test("Postgres stopped behind compute_ctl's back: failed, exit with Postgres's code 0", async () => {
    const s = await start({ mode: "Replica" });
    await waitStatus(s, "running");
    process.kill(await postmasterPid(s), "SIGINT");
    expect(await s.compute.exited).toBe(0);
    expect(s.compute.stderr.text).toContain("postgres exited unexpectedly with code 0");
    await expectNothingLeft(s);
  });

  test("SIGTERM to compute_ctl: Postgres gets SIGINT, exit 1, nothing left", async () => {
    const s = await start({ mode: "Replica" });
    await waitStatus(s, "running");
    expect(await psql(s, "select 1")).toBe("1");
    s.compute.proc.kill("SIGTERM");
    expect(await s.compute.exited).toBe(1);
    expect(s.compute.stderr.text).toContain("sending SIGINT to postgres");
    await expectNothingLeft(s);
  });

  test("SIGTERM during sync-safekeepers: the sync is stopped, exit 1, nothing left", async () => {
    const s = await start({ safekeepers: "absent", sync: { hang: true } });
    await waitFor(async () => (await s.stack.pgbin.syncCalls()).length > 0, {
      what: "sync-safekeepers to start",
    });
    s.compute.proc.kill("SIGTERM");
    expect(await s.compute.exited).toBe(1);
    expect(s.compute.stderr.text).toContain("sending SIGTERM to sync-safekeepers");
    await expectNothingLeft(s);
  });

  test("Postgres not ready in time: killed, failed, exit 1, nothing left", async () => {
    const s = await start({
      mode: "Replica",
      startDelayMs: 10_000,
      env: { COMPUTE_CTL_TESTING_PG_READY_TIMEOUT_MS: "1500" },
    });
    const st = await waitStatus(s, "failed");
    expect(st.error).toContain("timed out while waiting for Postgres to start");
    expect(await s.compute.exited).toBe(1);
    await expectNothingLeft(s);
  });
});
