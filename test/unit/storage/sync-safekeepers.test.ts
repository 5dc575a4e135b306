// `postgres --sync-safekeepers` through the pgbin wrapper: invocation, output parsing, errors,
// timeout, termination and the retry backoff.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Children } from "../../../src/compute/children.ts";
import { errorChain } from "../../../src/errors.ts";
import {
  SYNC_SK_RETRIES,
  syncBackoffMs,
  syncSafekeepers,
  syncSafekeepersWithRetries,
} from "../../../src/storage/sync-safekeepers.ts";
import { makePgbinWrapper, type PgbinWrapper } from "../../fakes/pgbin.ts";
import { cleanup, makeUserDir, RUN_AS, waitFor } from "../../support/proc.ts";

const runAs = RUN_AS ?? undefined;
const ZWSP = "\u200B";

let w: PgbinWrapper;
let pgdata: string;

beforeAll(async () => {
  w = await makePgbinWrapper({});
  pgdata = await makeUserDir("sk-pgdata-");
  // The walproposer reads neon.safekeepers from here; the wrapper records that it was there.
  writeFileSync(
    join(pgdata, "postgresql.conf"),
    "neon.safekeepers = 'g#1:127.0.0.1:6500,127.0.0.1:6501'\n",
  );
  delete process.env.NEON_AUTH_TOKEN;
});

afterAll(cleanup, 30_000);

function base(records: string[] = []) {
  return {
    pgbin: w.pgbin,
    pgdata,
    token: null as string | null,
    children: new Children(),
    runAs,
    writeLog: (l: string) => records.push(l),
  };
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a failure");
}

describe("syncSafekeepers", () => {
  test("returns the printed LSN; PGDATA and the token in the env, no -D", async () => {
    await w.setSync({ lsn: "0/169AD58" });
    const records: string[] = [];
    const opts = { ...base(records), token: "tok.en" };
    expect(await syncSafekeepers(opts)).toBe("0/169AD58");
    const calls = await w.syncCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      argv: [w.pgbin, "--sync-safekeepers"],
      env: { PGDATA: pgdata, NEON_AUTH_TOKEN: "tok.en" },
      hadConf: true,
      confHasSafekeepers: true,
    });
    expect(opts.children.size).toBe(0);
    // The two multi-line stderr records, each forwarded as one PG: line.
    expect(records).toHaveLength(2);
    expect(records[0]).toMatch(
      new RegExp(
        `^PG:\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}\\.000 UTC \\[\\d+\\] LOG:  sync-safekeepers call 1${ZWSP}\tsecond line of record one\n$`,
      ),
    );
    expect(records[1]).toMatch(/LOG: {2}record two\u200B\tits continuation\n$/);
  });

  test("no token: NEON_AUTH_TOKEN is not set", async () => {
    await w.setSync({});
    expect(await syncSafekeepers(base())).toBe("0/169AD58");
    const [call] = await w.syncCalls();
    expect(call?.env).toEqual({ PGDATA: pgdata });
  });

  test("0/0 is valid; the LSN is trimmed and normalised", async () => {
    await w.setSync({ lsn: "0/0" });
    expect(await syncSafekeepers(base())).toBe("0/0");
    await w.setSync({ lsn: "  1a/00ff00 " });
    expect(await syncSafekeepers(base())).toBe("1A/FF00");
  });

  test("a non-zero exit: the reference's error text with stdout", async () => {
    await w.setSync({ exitCode: 2 });
    const err = await failure(syncSafekeepers(base()));
    expect(err.message).toBe(
      "postgres --sync-safekeepers exited with non-zero status: exit status: 2. stdout: injected failure 1 of 1000000\n",
    );
  });

  test("output that is not an LSN is an error", async () => {
    await w.setSync({ garbage: true });
    const err = await failure(syncSafekeepers(base()));
    expect(err.message).toBe(
      'postgres --sync-safekeepers printed no LSN: expected "X/Y" on stdout, got "this is not an LSN\\n"',
    );
    for (const lsn of ["1/2/3", "100000000/0", "x/1", ""]) {
      await w.setSync({ lsn });
      expect((await failure(syncSafekeepers(base()))).message).toContain("printed no LSN");
    }
  });

  test("custom stderr lines are forwarded", async () => {
    await w.setSync({ stderrLines: ["2025-07-31 12:00:00 UTC LOG:  a", "\tb", "plain"] });
    const records: string[] = [];
    await syncSafekeepers(base(records));
    expect(records).toEqual([`PG:2025-07-31 12:00:00 UTC LOG:  a${ZWSP}\tb${ZWSP}plain\n`]);
  });

  test("a hang hits the timeout: SIGTERM, the child is gone, an error", async () => {
    await w.setSync({ hang: true });
    const opts = { ...base(), timeoutMs: 400 };
    const started = performance.now();
    const err = await failure(syncSafekeepers(opts));
    const took = performance.now() - started;
    expect(err.message).toBe(
      "postgres --sync-safekeepers timed out after 400 ms (signal: 15 (SIGTERM))",
    );
    expect(took).toBeGreaterThanOrEqual(390);
    expect(took).toBeLessThan(3_000);
    expect(opts.children.size).toBe(0);
  });

  test("a child that ignores SIGTERM is SIGKILLed after the grace", async () => {
    const dir = await makeUserDir("sk-stubborn-");
    const pgbin = join(dir, "postgres");
    // An ignored signal stays ignored across exec.
    writeFileSync(pgbin, "#!/bin/bash\ntrap '' TERM\nexec sleep infinity\n", { mode: 0o755 });
    const opts = { ...base(), pgbin, timeoutMs: 200, killGraceMs: 300 };
    const started = performance.now();
    const err = await failure(syncSafekeepers(opts));
    expect(err.message).toBe(
      "postgres --sync-safekeepers timed out after 200 ms (signal: 9 (SIGKILL))",
    );
    expect(performance.now() - started).toBeGreaterThanOrEqual(490);
    expect(opts.children.size).toBe(0);
  });

  test("termination forwarding SIGTERMs a running sync", async () => {
    await w.setSync({ hang: true });
    const opts = base();
    const p = failure(syncSafekeepers(opts));
    await waitFor(async () => (await w.syncCalls()).length === 1 && opts.children.size === 1, {
      what: "the sync child to start",
      timeoutMs: 5_000,
    });
    const pid = opts.children.find("sync-safekeepers")!.pid;
    opts.children.forwardTermination();
    const err = await p;
    expect(err.message).toBe(
      "postgres --sync-safekeepers exited with non-zero status: signal: 15 (SIGTERM). stdout: ",
    );
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(opts.children.size).toBe(0);
  });

  test("a pgbin that cannot be run throws", async () => {
    await expect(syncSafekeepers({ ...base(), pgbin: "/nonexistent/postgres" })).rejects.toThrow();
  });
});

describe("syncSafekeepersWithRetries", () => {
  test("backoff(n) is min(1.1^n, 3) s, 0 for n = 0", () => {
    const want = [0, 1100, 1210, 1331, 1464.1, 1610.51];
    want.forEach((ms, n) => {
      expect(syncBackoffMs(n)).toBeCloseTo(ms, 6);
    });
    expect(syncBackoffMs(12)).toBe(3000);
    expect(syncBackoffMs(2, 0.5)).toBeCloseTo(605, 6);
    expect(SYNC_SK_RETRIES).toBe(5);
  });

  test("the reference's delays, slept through an injected sleep", async () => {
    await w.setSync({ failTimes: 5, lsn: "0/ABC" });
    const slept: number[] = [];
    const attempts: [number, number][] = [];
    const r = await syncSafekeepersWithRetries({
      ...base(),
      backoffScale: 1,
      sleep: async (ms) => {
        slept.push(ms);
      },
      onAttempt: (a, d) => attempts.push([a, d]),
    });
    expect(r.lsn).toBe("0/ABC");
    // The first retry is immediate (backoff(0) = 0), so four sleeps for five retries.
    expect(slept.map((s) => Math.round(s * 10) / 10)).toEqual([1100, 1210, 1331, 1464.1]);
    expect(attempts.map(([a, d]) => [a, Math.round(d * 10) / 10])).toEqual([
      [0, 0],
      [1, 0],
      [2, 1100],
      [3, 1210],
      [4, 1331],
      [5, 1464.1],
    ]);
    expect((await w.syncCalls()).length).toBe(6);
  });

  test("scaled backoff: attempt count and the gaps between calls", async () => {
    await w.setSync({ failTimes: 2, lsn: "2/0" });
    const r = await syncSafekeepersWithRetries({ ...base(), backoffScale: 0.1 });
    expect(r.lsn).toBe("2/0");
    expect(r.ms).toBeGreaterThan(0);
    expect(r.ms).toBeLessThan(2_000);
    const at = (await w.syncCalls()).map((c) => c.at);
    expect(at).toHaveLength(3);
    expect(at[1]! - at[0]!).toBeLessThan(100);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(110 - 5);
    expect(at[2]! - at[0]!).toBeLessThan(2_000);
  });

  test("gives up after 5 retries (6 attempts) with the last error as the cause", async () => {
    await w.setSync({ exitCode: 1 });
    const err = await failure(syncSafekeepersWithRetries({ ...base(), backoffScale: 0 }));
    expect(errorChain(err)).toEqual([
      "failed to sync safekeepers",
      "postgres --sync-safekeepers exited with non-zero status: exit status: 1. stdout: injected failure 6 of 1000000\n",
    ]);
    expect((await w.syncCalls()).length).toBe(6);
  });

  test("retries: 0 means one attempt", async () => {
    await w.setSync({ failTimes: 1 });
    await expect(
      syncSafekeepersWithRetries({ ...base(), retries: 0, backoffScale: 0 }),
    ).rejects.toThrow("failed to sync safekeepers");
    expect((await w.syncCalls()).length).toBe(1);
  });

  test("an aborted signal stops further attempts", async () => {
    await w.setSync({ failTimes: 100 });
    const ac = new AbortController();
    const err = await failure(
      syncSafekeepersWithRetries({
        ...base(),
        backoffScale: 0,
        onAttempt: (a) => {
          if (a === 1) ac.abort(new Error("terminating"));
        },
        signal: ac.signal,
      }),
    );
    expect(errorChain(err)[0]).toBe("failed to sync safekeepers");
    expect((await w.syncCalls()).length).toBe(2);
  });

  test("real delays: 0 + 1.1 + 1.21 + 1.331 + 1.4641 s between six attempts", async () => {
    await w.setSync({ failTimes: 5, lsn: "0/16B9188" });
    const started = performance.now();
    const r = await syncSafekeepersWithRetries({ ...base(), backoffScale: 1 });
    const took = performance.now() - started;
    expect(r.lsn).toBe("0/16B9188");
    const at = (await w.syncCalls()).map((c) => c.at);
    expect(at).toHaveLength(6);
    const want = [1100, 1210, 1331, 1464.1];
    for (let k = 1; k < 6; k++) {
      const gap = at[k]! - at[k - 1]!;
      if (k >= 2) expect(gap).toBeGreaterThanOrEqual(want[k - 2]! - 5);
      expect(gap).toBeLessThan((want[k - 2] ?? 1100) + 1_000);
    }
    expect(took).toBeGreaterThanOrEqual(5_100);
    expect(took).toBeLessThan(9_000);
  }, 20_000);
});
