import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatChain } from "../../../src/errors.ts";
import { configureLogging } from "../../../src/log.ts";
import {
  type BasebackupSource,
  basebackupCommand,
  defaultBasebackupRetries,
  getBasebackup,
  libpqBasebackupSource,
} from "../../../src/storage/basebackup.ts";
import { TarError } from "../../../src/storage/untar.ts";
import { basebackupTemplate } from "../../fakes/basebackup-template.ts";
import { type FakePageserver, startFakePageserver } from "../../fakes/pageserver.ts";
import { cleanup, makeUserDir } from "../../support/proc.ts";

const TENANT = "9ef87a5bf0d92544f6fafeeb3239695c";
const TIMELINE = "de200bd42b49cc1814412c7e592dd6e9";

const servers: FakePageserver[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
  await cleanup();
});

// Warnings are what the retry loop logs; capture them per test.
let logged: string[] = [];
configureLogging({ sink: { write: (t) => logged.push(t) } });
afterEach(() => {
  logged = [];
});
afterAll(() => configureLogging({ sink: { write: (t) => process.stderr.write(t) } }));

async function* bytesOf(b: Uint8Array, size = 65536): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

interface Attempt {
  /** "refuse": connect() throws; "error-mid": half the bytes then a throw; "ok". */
  kind: "refuse" | "error-mid" | "error-after" | "ok";
}

/** A scripted source: one Attempt per connect(), recording connects and closes. */
function scripted(gzBytes: Uint8Array, script: Attempt["kind"][]) {
  const stats = { connects: 0, closes: 0 };
  const source: BasebackupSource = {
    async connect() {
      const kind = script[Math.min(stats.connects, script.length - 1)];
      stats.connects++;
      if (kind === "refuse") throw new Error(`connection refused (#${stats.connects})`);
      const n = stats.connects;
      async function* stream() {
        if (kind === "error-mid") {
          yield* bytesOf(gzBytes.subarray(0, gzBytes.length >> 1));
          throw new Error(`connection reset mid-stream (#${n})`);
        }
        yield* bytesOf(gzBytes);
        if (kind === "error-after") throw new Error(`ERROR: after the data (#${n})`);
      }
      return {
        connectMicros: 1234,
        stream: stream(),
        close: async () => {
          stats.closes++;
        },
      };
    },
  };
  return { source, stats };
}

function recordingSleep() {
  const sleeps: number[] = [];
  return { sleeps, sleep: async (ms: number) => void sleeps.push(ms) };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

describe("basebackupCommand", () => {
  const base = { tenantId: TENANT, timelineId: TIMELINE };
  test("omits an LSN of 0 and adds --replica unless primary", () => {
    expect(basebackupCommand({ ...base, lsn: "0/0", mode: "primary" })).toBe(
      `basebackup ${TENANT} ${TIMELINE} --gzip`,
    );
    expect(basebackupCommand({ ...base, lsn: "0/0", mode: "replica" })).toBe(
      `basebackup ${TENANT} ${TIMELINE} --gzip --replica`,
    );
    expect(basebackupCommand({ ...base, lsn: "0/169AD58", mode: "primary" })).toBe(
      `basebackup ${TENANT} ${TIMELINE} 0/169AD58 --gzip`,
    );
    expect(basebackupCommand({ ...base, lsn: "0/169AD58", mode: "static" })).toBe(
      `basebackup ${TENANT} ${TIMELINE} 0/169AD58 --gzip --replica`,
    );
    expect(basebackupCommand({ ...base, lsn: "1/0", mode: "primary" })).toBe(
      `basebackup ${TENANT} ${TIMELINE} 1/0 --gzip`,
    );
  });
});

describe("defaultBasebackupRetries", () => {
  test("10, or NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES", () => {
    expect(defaultBasebackupRetries({})).toBe(10);
    expect(defaultBasebackupRetries({ NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: "0" })).toBe(0);
    expect(defaultBasebackupRetries({ NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: "3" })).toBe(3);
    for (const bad of ["", "-1", "x", "65536", "1.5"]) {
      expect(() =>
        defaultBasebackupRetries({ NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: bad }),
      ).toThrow(/NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES must be an integer/);
    }
  });
});

describe("getBasebackup retries", () => {
  test("11 tries with 500 ms ×1.5 sleeps between, then the reference's error", async () => {
    const { tarGzPath, checkpointLsn } = await basebackupTemplate();
    const { source, stats } = scripted(await Bun.file(tarGzPath).bytes(), ["refuse"]);
    const { sleeps, sleep } = recordingSleep();
    const pgdata = await makeUserDir("bb-fail-");
    const err = await rejection(getBasebackup({ source, pgdata, lsn: checkpointLsn, sleep }));
    expect(stats.connects).toBe(11);
    expect(sleeps).toEqual([500, 750, 1125, 1687, 2531, 3796, 5695, 8542, 12814, 19221]);
    expect(err.message).toBe(`failed to get basebackup@${checkpointLsn}`);
    expect((err.cause as Error).message).toBe("connection refused (#11)");
    const warnings = logged.filter((l) => l.includes("Failed to get basebackup"));
    expect(warnings.length).toBe(10);
    expect(warnings[0]).toContain(
      "WARN Failed to get basebackup: connection refused (#1) (attempt 0/10)",
    );
    expect(warnings[9]).toContain("connection refused (#10) (attempt 9/10)");
  }, 60_000);

  test("stops at the first success and reports its metrics", async () => {
    const { tarGzPath, checkpointLsn } = await basebackupTemplate();
    const gzBytes = await Bun.file(tarGzPath).bytes();
    const { source, stats } = scripted(gzBytes, ["refuse", "refuse", "ok"]);
    const { sleeps, sleep } = recordingSleep();
    const pgdata = await makeUserDir("bb-ok-");
    let streaming = 0;
    const onFirstByte = () => streaming++;
    const m = await getBasebackup({ source, pgdata, lsn: checkpointLsn, sleep, onFirstByte });
    // Refused attempts never stream: the hook fires once, for the attempt that did.
    expect(streaming).toBe(1);
    expect(m.attempts).toBe(3);
    expect(stats).toEqual({ connects: 3, closes: 1 });
    expect(sleeps).toEqual([500, 750]);
    expect(m.basebackupBytes).toBe(gzBytes.length);
    expect(m.pageserverConnectMicros).toBe(1234);
    expect(m.basebackupMs).toBeGreaterThanOrEqual(0);
    expect(readFileSync(join(pgdata, "PG_VERSION"), "utf8")).toBe("15\n");
  }, 60_000);

  test("does not clean PGDATA between tries; a later try extracts over the partial tree", async () => {
    const { tarGzPath, checkpointLsn } = await basebackupTemplate();
    const { source, stats } = scripted(await Bun.file(tarGzPath).bytes(), [
      "error-mid",
      "error-after",
      "ok",
    ]);
    const { sleeps, sleep } = recordingSleep();
    const pgdata = await makeUserDir("bb-partial-");
    writeFileSync(join(pgdata, "postgresql.conf"), "# written before the basebackup\n");
    let streaming = 0;
    const onFirstByte = () => streaming++;
    const m = await getBasebackup({ source, pgdata, lsn: checkpointLsn, sleep, onFirstByte });
    // Every attempt that received data called the hook at its first byte.
    expect(streaming).toBe(3);
    expect(m.attempts).toBe(3);
    expect(stats).toEqual({ connects: 3, closes: 3 });
    expect(sleeps).toEqual([500, 750]);
    expect(readFileSync(join(pgdata, "postgresql.conf"), "utf8")).toContain("before");
    const reference = await makeUserDir("bb-partial-ref-");
    Bun.spawnSync(["tar", "-xzf", tarGzPath, "-C", reference]);
    writeFileSync(join(reference, "postgresql.conf"), "# written before the basebackup\n");
    expect(Bun.spawnSync(["diff", "-r", reference, pgdata]).exitCode).toBe(0);
    expect(logged.join("")).toContain("connection reset mid-stream (#1) (attempt 0/10)");
    expect(logged.join("")).toContain("ERROR: after the data (#2) (attempt 1/10)");
  }, 60_000);

  test("the retry count, initial delay and factor can be given", async () => {
    const { tarGzPath } = await basebackupTemplate();
    const { source, stats } = scripted(await Bun.file(tarGzPath).bytes(), ["refuse"]);
    const { sleeps, sleep } = recordingSleep();
    const err = await rejection(
      getBasebackup({
        source,
        pgdata: await makeUserDir("bb-opts-"),
        lsn: "0/0",
        retries: 2,
        initialDelayMs: 10,
        factor: 2,
        sleep,
      }),
    );
    expect(stats.connects).toBe(3);
    expect(sleeps).toEqual([10, 20]);
    expect(formatChain(err)).toBe(
      "failed to get basebackup@0/0\n\nCaused by:\n    0: connection refused (#3)",
    );
  }, 60_000);

  test("NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES sets the default", async () => {
    const { source, stats } = scripted(new Uint8Array(), ["refuse"]);
    const { sleep } = recordingSleep();
    const saved = process.env.NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES;
    process.env.NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES = "1";
    try {
      await rejection(
        getBasebackup({ source, pgdata: await makeUserDir("bb-env-"), lsn: "0/0", sleep }),
      );
    } finally {
      if (saved === undefined) delete process.env.NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES;
      else process.env.NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES = saved;
    }
    expect(stats.connects).toBe(2);
  });
});

describe("libpqBasebackupSource", () => {
  test("connects with the token as password, compute_mode options and application_name", async () => {
    const seen: Record<string, unknown>[] = [];
    const commands: string[] = [];
    const fakeConnect = async (o: object) => {
      seen.push({ ...o });
      return {
        connectMicros: 42,
        copyOut(sql: string) {
          commands.push(sql);
          return bytesOf(new Uint8Array());
        },
        close: async () => {},
      };
    };
    const url = "postgresql://user:urlpass@pageserver.local:6400/db?options=-c%20x%3D1";
    const withToken = libpqBasebackupSource(
      {
        connstring: url,
        token: "tok",
        mode: "replica",
        command: "basebackup a b --gzip --replica",
      },
      fakeConnect,
    );
    const c = await withToken.connect();
    expect(c.connectMicros).toBe(42);
    expect(seen[0]).toMatchObject({
      host: "pageserver.local",
      port: 6400,
      user: "user",
      database: "db",
      password: "tok",
      options: "-c neon.compute_mode=replica",
      applicationName: "compute_ctl",
    });
    expect(commands).toEqual(["basebackup a b --gzip --replica"]);
    const noToken = libpqBasebackupSource(
      { connstring: url, token: null, mode: "primary", command: "basebackup a b --gzip" },
      fakeConnect,
    );
    await noToken.connect();
    expect(seen[1]).toMatchObject({ password: "urlpass", options: "-c neon.compute_mode=primary" });
  });
});

describe("getBasebackup against the fake pageserver (real wire client)", () => {
  async function pageserver(faults = {}, token: string | null = "storage-token") {
    const { tarGzPath } = await basebackupTemplate();
    const gzBytes = await Bun.file(tarGzPath).bytes();
    const ps = await startFakePageserver({
      basebackup: () => gzBytes,
      token,
      tenantId: TENANT,
      timelineId: TIMELINE,
      faults,
    });
    servers.push(ps);
    return { ps, gzBytes };
  }

  function sourceFor(ps: FakePageserver, lsn: string, mode: "primary" | "replica" = "primary") {
    return libpqBasebackupSource({
      connstring: `postgresql://cloud_admin@127.0.0.1:${ps.port}`,
      token: "storage-token",
      mode,
      command: basebackupCommand({ tenantId: TENANT, timelineId: TIMELINE, lsn, mode }),
    });
  }

  test("unpacks the basebackup and measures it", async () => {
    const { ps, gzBytes } = await pageserver();
    const pgdata = await makeUserDir("bb-wire-");
    const m = await getBasebackup({ source: sourceFor(ps, "0/0", "replica"), pgdata, lsn: "0/0" });
    expect(ps.rejections).toEqual([]);
    expect(ps.requests.map((r) => r.command)).toEqual([
      `basebackup ${TENANT} ${TIMELINE} --gzip --replica`,
    ]);
    expect(ps.requests[0]?.startup).toMatchObject({
      options: "-c neon.compute_mode=replica",
      application_name: "compute_ctl",
    });
    expect(m.attempts).toBe(1);
    expect(m.basebackupBytes).toBe(gzBytes.length);
    expect(m.pageserverConnectMicros).toBeGreaterThan(0);
    expect(existsSync(join(pgdata, "global", "pg_control"))).toBe(true);
  }, 60_000);

  test("an ErrorResponse after the data is a failed try", async () => {
    const { ps } = await pageserver({ errorAfterData: true });
    const { sleeps, sleep } = recordingSleep();
    const pgdata = await makeUserDir("bb-wire-err-");
    const source = sourceFor(ps, "0/15D3F98");
    const err = await rejection(
      getBasebackup({ source, pgdata, lsn: "0/15D3F98", retries: 2, sleep }),
    );
    expect(ps.rejections).toEqual([]);
    expect(ps.requests.length).toBe(3);
    expect(ps.requests[0]?.command).toBe(`basebackup ${TENANT} ${TIMELINE} 0/15D3F98 --gzip`);
    expect(sleeps).toEqual([500, 750]);
    expect(formatChain(err)).toMatch(
      /^failed to get basebackup@0\/15D3F98\n\nCaused by:\n {4}0: .*injected error after data/,
    );
  }, 60_000);

  test("a truncated gzip stream is a failed try", async () => {
    const { ps } = await pageserver({ truncateGzip: true });
    const err = await rejection(
      getBasebackup({
        source: sourceFor(ps, "0/0"),
        pgdata: await makeUserDir("bb-wire-trunc-"),
        lsn: "0/0",
        retries: 0,
      }),
    );
    expect(formatChain(err)).toMatch(/gzip decompression failed\n {4}1: .*unexpected end of file/);
  }, 60_000);

  test("a pageserver sending 1 byte a second: the attempt ends at its deadline", async () => {
    const { ps } = await pageserver({ trickleMs: 1000 });
    const started = performance.now();
    const err = await rejection(
      getBasebackup({
        source: sourceFor(ps, "0/0"),
        pgdata: await makeUserDir("bb-wire-trickle-"),
        lsn: "0/0",
        retries: 0,
        attemptTimeoutMs: 1500,
      }),
    );
    expect(performance.now() - started).toBeLessThan(5000);
    expect(formatChain(err)).toBe(
      `failed to get basebackup@0/0\n\nCaused by:\n    0: basebackup from 127.0.0.1:${ps.port} not complete after 1500 ms (0 bytes of it received)`,
    );
    expect(ps.rejections).toEqual([]);
  }, 60_000);

  test("a silent pageserver (accepts, never answers): the connect ends at the deadline", async () => {
    const { ps } = await pageserver({ silent: true });
    const err = await rejection(
      getBasebackup({
        source: sourceFor(ps, "0/0"),
        pgdata: await makeUserDir("bb-wire-silent-"),
        lsn: "0/0",
        retries: 0,
        attemptTimeoutMs: 500,
      }),
    );
    expect(formatChain(err)).toContain(
      `no basebackup connection from 127.0.0.1:${ps.port} within 500 ms`,
    );
  }, 60_000);

  test("a reset mid-stream is a failed try, retried", async () => {
    const { ps } = await pageserver({ resetAfterBytes: 20_000 });
    const { sleeps, sleep } = recordingSleep();
    const err = await rejection(
      getBasebackup({
        source: sourceFor(ps, "0/0"),
        pgdata: await makeUserDir("bb-wire-reset-"),
        lsn: "0/0",
        retries: 1,
        sleep,
      }),
    );
    expect(ps.requests).toHaveLength(2);
    expect(sleeps).toEqual([500]);
    expect(formatChain(err)).toMatch(
      /connection to 127\.0\.0\.1:\d+ (closed by the server|failed)/,
    );
  }, 60_000);

  for (const [wrong, text] of [
    ["copy-in", "unexpected message CopyInResponse"],
    ["data-row", "unexpected message DataRow"],
  ] as const) {
    test(`a well-formed ${wrong} message where the copy belongs is a failed try`, async () => {
      const { ps } = await pageserver({ wrongMessage: wrong });
      const err = await rejection(
        getBasebackup({
          source: sourceFor(ps, "0/0"),
          pgdata: await makeUserDir("bb-wire-wrong-"),
          lsn: "0/0",
          retries: 0,
        }),
      );
      expect(formatChain(err)).toContain(text);
    }, 60_000);
  }

  test("endless NoticeResponses instead of data: the attempt ends at its deadline", async () => {
    const { ps } = await pageserver({ wrongMessage: "notices" });
    const err = await rejection(
      getBasebackup({
        source: sourceFor(ps, "0/0"),
        pgdata: await makeUserDir("bb-wire-notices-"),
        lsn: "0/0",
        retries: 0,
        attemptTimeoutMs: 800,
      }),
    );
    expect(formatChain(err)).toContain("not complete after 800 ms (0 bytes of it received)");
  }, 60_000);

  test("refused connections are retried", async () => {
    const { ps } = await pageserver({ refuseConnections: 2 });
    const { sleeps, sleep } = recordingSleep();
    const m = await getBasebackup({
      source: sourceFor(ps, "0/0"),
      pgdata: await makeUserDir("bb-wire-refuse-"),
      lsn: "0/0",
      sleep,
    });
    expect(m.attempts).toBe(3);
    expect(sleeps).toEqual([500, 750]);
  }, 60_000);
});

test("TarError is what an unsafe archive raises (exported for callers)", () => {
  expect(new TarError("x").name).toBe("TarError");
});
