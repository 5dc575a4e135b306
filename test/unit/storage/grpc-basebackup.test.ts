// The gRPC basebackup against the strict fake gRPC pageserver: the request, the retry loop's
// outcomes for each fault, and the memory bound (the server cannot run ahead of the disk).
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { formatChain } from "../../../src/errors.ts";
import { configureLogging } from "../../../src/log.ts";
import { getBasebackup, grpcBasebackupSource } from "../../../src/storage/basebackup.ts";
import { grpcOrigin, openGrpcBasebackup } from "../../../src/storage/page-api/client.ts";
import { basebackupTemplate } from "../../fakes/basebackup-template.ts";
import {
  type FakeGrpcPageserver,
  type GrpcPageserverFaults,
  startFakeGrpcPageserver,
} from "../../fakes/grpc-pageserver.ts";
import { freePort } from "../../support/ports.ts";
import { cleanup, makeUserDir } from "../../support/proc.ts";

const TENANT = "9ef87a5bf0d92544f6fafeeb3239695c";
const TIMELINE = "de200bd42b49cc1814412c7e592dd6e9";
const TOKEN = "storage-token";

const servers: FakeGrpcPageserver[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
  await cleanup();
});

let logged: string[] = [];
configureLogging({ sink: { write: (t) => logged.push(t) } });
afterEach(() => {
  logged = [];
});
afterAll(() => configureLogging({ sink: { write: (t) => process.stderr.write(t) } }));

async function pageserver(
  faults: GrpcPageserverFaults = {},
  extra: { token?: string | null; expectReplica?: boolean; shardCount?: number } = {},
) {
  const { tarGzPath } = await basebackupTemplate();
  const gzBytes = new Uint8Array(readFileSync(tarGzPath));
  const ps = await startFakeGrpcPageserver({
    basebackup: () => gzBytes,
    tenantId: TENANT,
    timelineId: TIMELINE,
    token: extra.token === undefined ? TOKEN : extra.token,
    expectReplica: extra.expectReplica,
    shardCount: extra.shardCount,
    faults,
  });
  servers.push(ps);
  return { ps, gzBytes };
}

function source(
  ps: FakeGrpcPageserver,
  lsn: string,
  mode: "primary" | "replica" | "static" = "primary",
  opts: { token?: string | null; shardId?: string } = {},
) {
  return grpcBasebackupSource({
    target: {
      url: ps.url,
      tenantId: TENANT,
      timelineId: TIMELINE,
      shardId: opts.shardId ?? "0000",
      token: opts.token === undefined ? TOKEN : opts.token,
    },
    lsn,
    mode,
  });
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

/** Every path under `dir`, relative, sorted. */
function tree(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory()) out.push(...tree(dir, p));
  }
  return out.sort();
}

describe("grpcOrigin", () => {
  test("grpc://user@host:port maps to the h2c origin; other forms are refused clearly", () => {
    expect(grpcOrigin("grpc://no_user@pageserver-0.local:51051")).toBe(
      "http://pageserver-0.local:51051",
    );
    expect(grpcOrigin("grpc://127.0.0.1:6401")).toBe("http://127.0.0.1:6401");
    expect(grpcOrigin("grpc://no_user@[::1]:51051")).toBe("http://[::1]:51051");
    expect(grpcOrigin("http://ps:1")).toBe("http://ps:1");
    expect(() => grpcOrigin("postgresql://no_user@ps:6400")).toThrow(
      'unsupported pageserver gRPC URL scheme "postgresql"',
    );
    expect(() => grpcOrigin("grpc://ps")).toThrow("has no port");
    expect(() => grpcOrigin("grpc://ps:1/page_api")).toThrow("must not have a path");
    expect(() => grpcOrigin("not a url")).toThrow("invalid pageserver gRPC URL");
  });
});

describe("the gRPC basebackup", () => {
  test("request, metadata and the unpacked tree match the libpq path's", async () => {
    const { ps, gzBytes } = await pageserver({ chunkSize: 100_000 }, { expectReplica: false });
    const pgdata = await makeUserDir("grpc-bb-");
    const m = await getBasebackup({ source: source(ps, "0/15D3F98"), pgdata, lsn: "0/15D3F98" });
    expect(ps.rejections).toEqual([]);
    expect(ps.requests).toHaveLength(1);
    const r = ps.requests[0]!;
    expect(r.method).toBe("GetBaseBackup");
    // full=false and the bools' defaults are not on the wire (proto3): only lsn and compression.
    expect(r.fields).toEqual({ lsn: 0x15d3f98n, compression: 2n });
    expect(r.headers).toMatchObject({
      "neon-tenant-id": TENANT,
      "neon-timeline-id": TIMELINE,
      "neon-shard-id": "0000",
      authorization: `Bearer ${TOKEN}`,
    });
    expect(r.headers["grpc-accept-encoding"]).toBeUndefined();
    expect(r.headers["grpc-encoding"]).toBeUndefined();
    expect(m.attempts).toBe(1);
    expect(m.basebackupBytes).toBe(gzBytes.length);
    expect(m.pageserverConnectMicros).toBeGreaterThan(0);
    expect(m.basebackupMs).toBeGreaterThanOrEqual(0);
    expect(existsSync(join(pgdata, "global", "pg_control"))).toBe(true);

    const floor = await makeUserDir("grpc-bb-floor-");
    const tar = Bun.spawnSync(["tar", "-xzf", "-", "-C", floor], { stdin: gzBytes });
    expect(tar.exitCode).toBe(0);
    expect(tree(pgdata)).toEqual(tree(floor));
    expect(readFileSync(join(pgdata, "global", "pg_control"))).toEqual(
      readFileSync(join(floor, "global", "pg_control")),
    );
  }, 60_000);

  test("LSN 0 is left out, a replica says so, and no token means no authorization", async () => {
    const { ps } = await pageserver({}, { token: null, expectReplica: true, shardCount: 4 });
    const pgdata = await makeUserDir("grpc-bb-replica-");
    await getBasebackup({
      source: source(ps, "0/0", "replica", { token: null, shardId: "0004" }),
      pgdata,
      lsn: "0/0",
    });
    expect(ps.rejections).toEqual([]);
    expect(ps.requests[0]?.fields).toEqual({ replica: true, compression: 2n });
    expect(ps.requests[0]?.headers.authorization).toBeUndefined();
    expect(ps.requests[0]?.headers["neon-shard-id"]).toBe("0004");
  }, 60_000);

  test("a wrong token is refused by the fake and fails every attempt", async () => {
    const { ps } = await pageserver();
    const { sleeps, sleep } = recordingSleep();
    const err = await rejection(
      getBasebackup({
        source: source(ps, "0/0", "primary", { token: "wrong" }),
        pgdata: await makeUserDir("grpc-bb-badtoken-"),
        lsn: "0/0",
        retries: 1,
        sleep,
      }),
    );
    expect(ps.rejections).toHaveLength(2);
    expect(formatChain(err)).toContain("[invalid_argument] invalid JWT token");
    expect(sleeps).toEqual([500]);
  }, 60_000);

  test("an error status after the complete tar fails the attempt; later bytes count once", async () => {
    const { ps, gzBytes } = await pageserver({ errorAfterData: true, faultyCalls: 2 });
    const { sleeps, sleep } = recordingSleep();
    const m = await getBasebackup({
      source: source(ps, "0/15D3F98"),
      pgdata: await makeUserDir("grpc-bb-err-"),
      lsn: "0/15D3F98",
      sleep,
    });
    expect(m.attempts).toBe(3);
    expect(sleeps).toEqual([500, 750]);
    // basebackup_bytes is the good attempt's, not the sum over all three.
    expect(m.basebackupBytes).toBe(gzBytes.length);
    const warnings = logged.filter((l) => l.includes("Failed to get basebackup"));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain("[internal] basebackup failed: injected error after data");
    expect(warnings[0]).toContain("(attempt 0/10)");
  }, 60_000);

  for (const [name, faults, expected] of [
    [
      "an error status after some chunks",
      { errorAfterChunks: 3 },
      /\[internal\] basebackup failed/,
    ],
    ["status OK in the middle of the gzip stream", { truncateGzip: true }, /gzip decompression/],
    ["a reset stream", { resetAfterChunks: 3 }, /\[internal\]/],
    ["a dropped connection mid-stream", { dropAfterChunks: 3 }, /\[internal\]|\[unavailable\]/],
  ] as const) {
    test(`${name} fails every attempt and the final error says why`, async () => {
      const { ps } = await pageserver({ chunkSize: 65536, ...faults });
      const { sleeps, sleep } = recordingSleep();
      const err = await rejection(
        getBasebackup({
          source: source(ps, "0/0"),
          pgdata: await makeUserDir("grpc-bb-fault-"),
          lsn: "0/0",
          retries: 2,
          sleep,
        }),
      );
      expect(ps.rejections).toEqual([]);
      expect(ps.requests).toHaveLength(3);
      expect(sleeps).toEqual([500, 750]);
      const chain = formatChain(err);
      expect(chain).toStartWith("failed to get basebackup@0/0");
      expect(chain).toMatch(expected);
    }, 60_000);
  }

  test("refused connections use up attempts one each: no hidden reconnects", async () => {
    const { ps } = await pageserver({ refuseConnections: 2 });
    const { sleeps, sleep } = recordingSleep();
    const m = await getBasebackup({
      source: source(ps, "0/0"),
      pgdata: await makeUserDir("grpc-bb-refuse-"),
      lsn: "0/0",
      sleep,
    });
    expect(m.attempts).toBe(3);
    expect(sleeps).toEqual([500, 750]);
    expect(ps.stats.connections).toBe(3);
    expect(ps.requests).toHaveLength(1);
    const warnings = logged.filter((l) => l.includes("Failed to get basebackup"));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain("[unavailable]");
  }, 60_000);

  test("nothing listening: each attempt fails at once with the connect error", async () => {
    const port = await freePort();
    const { sleeps, sleep } = recordingSleep();
    const t0 = performance.now();
    const err = await rejection(
      getBasebackup({
        source: grpcBasebackupSource({
          target: {
            url: `grpc://no_user@127.0.0.1:${port}`,
            tenantId: TENANT,
            timelineId: TIMELINE,
            shardId: "0000",
            token: null,
          },
          lsn: "0/0",
          mode: "primary",
        }),
        pgdata: await makeUserDir("grpc-bb-nothing-"),
        lsn: "0/0",
        retries: 3,
        sleep,
      }),
    );
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(sleeps).toEqual([500, 750, 1125]);
    expect(formatChain(err)).toContain(`[unavailable] cannot connect to http://127.0.0.1:${port}`);
    expect(formatChain(err)).toContain("ECONNREFUSED");
  }, 60_000);

  test("UNAVAILABLE statuses are retried by our loop, one call per attempt", async () => {
    const { ps } = await pageserver({ unavailable: 2 });
    const { sleeps, sleep } = recordingSleep();
    const m = await getBasebackup({
      source: source(ps, "0/0"),
      pgdata: await makeUserDir("grpc-bb-unavail-"),
      lsn: "0/0",
      sleep,
    });
    expect(m.attempts).toBe(3);
    expect(ps.requests).toHaveLength(3);
    expect(sleeps).toEqual([500, 750]);
  }, 60_000);

  test("a slow pageserver is waited for, and basebackup_ms includes the wait", async () => {
    const { ps } = await pageserver({ slowMs: 600, chunkDelayMs: 20, chunkSize: 1 << 20 });
    const m = await getBasebackup({
      source: source(ps, "0/0"),
      pgdata: await makeUserDir("grpc-bb-slow-"),
      lsn: "0/0",
      retries: 0,
    });
    expect(m.attempts).toBe(1);
    expect(m.basebackupMs).toBeGreaterThanOrEqual(600);
  }, 60_000);

  test("a pageserver sending 1 byte a second: the attempt ends at its deadline", async () => {
    const { ps } = await pageserver({ chunkSize: 1, chunkDelayMs: 1000 });
    const started = performance.now();
    const err = await rejection(
      getBasebackup({
        source: source(ps, "0/0"),
        pgdata: await makeUserDir("grpc-bb-trickle-"),
        lsn: "0/0",
        retries: 0,
        attemptTimeoutMs: 1500,
      }),
    );
    expect(performance.now() - started).toBeLessThan(5000);
    expect(formatChain(err)).toMatch(
      new RegExp(
        `^failed to get basebackup@0/0\\n\\nCaused by:\\n {4}0: basebackup from ${ps.url.replaceAll(".", "\\.")} not complete after 1500 ms \\([12] bytes of it received\\)$`,
      ),
    );
  }, 60_000);

  test("flow control: the server cannot run ahead of a reader that stops", async () => {
    // 32 MiB of incompressible chunks; the reader takes two and pauses.
    const chunk = 64 << 10;
    const total = 512;
    const payload = new Uint8Array(chunk * total);
    crypto.getRandomValues(payload.subarray(0, 65536));
    for (let o = 65536; o < payload.length; o += 65536) payload.copyWithin(o, 0, 65536);
    const ps = await startFakeGrpcPageserver({
      basebackup: () => payload,
      tenantId: TENANT,
      timelineId: TIMELINE,
      token: null,
      faults: { chunkSize: chunk },
    });
    servers.push(ps);
    const bb = await openGrpcBasebackup({
      target: { url: ps.url, tenantId: TENANT, timelineId: TIMELINE, shardId: "0000", token: null },
      lsn: "0/0",
      replica: false,
    });
    const it = bb.stream[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    await Bun.sleep(500);
    const sentWhilePaused = ps.stats.chunksSent;
    // In flight: the 2 MiB stream window plus socket and library buffers, far below the 32 MiB.
    expect(sentWhilePaused).toBeLessThan(2 + (6 << 20) / chunk);
    let n = 2;
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      n++;
    }
    expect(n).toBe(total);
    expect(ps.stats.chunksSent).toBe(total);
    await bb.close();
  }, 60_000);
});
