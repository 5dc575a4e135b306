// Each delay the other tests shorten with a testing knob, run once at the reference's value,
// plus the memory bound of a basebackup that expands to more than 2 GiB. Slow on purpose
// (about four minutes in all).
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanup } from "../support/proc.ts";
import {
  expectNothingLeft,
  type Started,
  start,
  terminate,
  waitStatus,
} from "../support/started.ts";

setDefaultTimeout(180_000);
afterAll(cleanup);

/** No testing knob at all: every delay is the reference's. */
const REFERENCE_ENV = {
  COMPUTE_CTL_TESTING_FAST_LINGER_MS: undefined,
  COMPUTE_CTL_TESTING_FAILED_EXIT_DELAY_MS: undefined,
  COMPUTE_CTL_TESTING_SYNC_SK_BACKOFF_SCALE: undefined,
  COMPUTE_CTL_TESTING_PG_READY_TIMEOUT_MS: undefined,
  NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: undefined,
} as unknown as Record<string, string>;

function logTimes(s: Started, re: RegExp): number[] {
  return s.compute.stderr.text
    .split("\n")
    .filter((l) => re.test(l))
    .map((l) => Date.parse(`${l.slice(0, 23)}Z`) + Number(l.slice(23, 26)) / 1000);
}

const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - (xs[i] ?? 0));

describe("reference timings", () => {
  test("basebackup: 10 retries 500 ms ×1.5 apart, then failed, then exit 1 after 30 s", async () => {
    const s = await start({
      mode: "Replica",
      pageserverFaults: { refuseConnections: 1_000_000 },
      env: REFERENCE_ENV,
    });
    const failedAt = (await waitStatus(s, "failed", 120_000)) && Date.now();
    const attempts = logTimes(s, /Failed to get basebackup: .*\(attempt \d+\/10\)/);
    expect(attempts).toHaveLength(10);
    let expected = 500;
    for (const g of gaps(attempts)) {
      expect(g).toBeGreaterThanOrEqual(expected - 20);
      expect(g).toBeLessThan(expected * 1.2 + 300);
      expected *= 1.5;
    }
    expect(await s.compute.exited).toBe(1);
    const window = Date.now() - failedAt;
    expect(window).toBeGreaterThanOrEqual(29_000);
    expect(window).toBeLessThan(36_000);
    await expectNothingLeft(s);
  });

  test("terminate fast: compute_ctl serves for 30 s more, then exits 0", async () => {
    const s = await start({ mode: "Replica", env: REFERENCE_ENV });
    await waitStatus(s, "running");
    expect((await terminate(s, "fast")).code).toBe(200);
    const t0 = Date.now();
    await Bun.sleep(25_000);
    expect((await s.compute.get("/status", s.token)).status).toBe(200);
    expect(await s.compute.exited).toBe(0);
    const lingered = Date.now() - t0;
    expect(lingered).toBeGreaterThanOrEqual(29_500);
    expect(lingered).toBeLessThan(33_000);
  });

  test("sync-safekeepers: 5 retries after 0, 1.1, 1.21, 1.331, 1.4641 s", async () => {
    const s = await start({ safekeepers: "absent", sync: { failTimes: 5 }, env: REFERENCE_ENV });
    await waitStatus(s, "running", 60_000);
    const calls = (await s.stack.pgbin.syncCalls()).map((c) => c.at);
    expect(calls).toHaveLength(6);
    const expected = [0, 1100, 1210, 1331, 1464];
    gaps(calls).forEach((g, i) => {
      expect(g).toBeGreaterThanOrEqual((expected[i] ?? 0) - 20);
      expect(g).toBeLessThan((expected[i] ?? 0) + 600);
    });
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
  });

  test("Postgres not ready after 60 s: killed, failed", async () => {
    const s = await start({ mode: "Replica", startDelayMs: 120_000, env: REFERENCE_ENV });
    const t0 = Date.now();
    const st = await waitStatus(s, "failed", 90_000);
    expect(st.error).toContain("timed out while waiting for Postgres to start");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(58_000);
    s.compute.proc.kill("SIGTERM");
    await s.compute.exited;
    await expectNothingLeft(s);
  });
});

describe("memory", () => {
  test("a basebackup that expands to 2 GiB keeps compute_ctl's VmHWM under 200 MB", async () => {
    const s = await start({
      mode: "Replica",
      template: { padBytes: 2 * 1024 ** 3 },
    });
    await waitStatus(s, "running", 150_000);
    const status = await Bun.file(`/proc/${s.compute.proc.pid}/status`).text();
    const hwmKb = Number(status.match(/^VmHWM:\s+(\d+) kB/m)?.[1]);
    expect(hwmKb).toBeGreaterThan(0);
    expect(hwmKb / 1024).toBeLessThan(200);
    const timings = await (await s.compute.get("/metrics.json", s.token)).json();
    console.error(
      `2 GiB basebackup: ${(timings as { basebackup_bytes: number }).basebackup_bytes} compressed bytes, VmHWM ${(hwmKb / 1024).toFixed(1)} MiB`,
    );
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
  });
});
