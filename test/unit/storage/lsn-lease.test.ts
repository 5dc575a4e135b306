import { afterEach, describe, expect, test } from "bun:test";
import {
  leaseRetryDelays,
  leaseSleepMs,
  PERMANENT_LEASE_ERROR,
  startLsnLeaseLoop,
  tenantShardId,
} from "../../../src/storage/lsn-lease.ts";
import {
  type FakeGrpcPageserver,
  type GrpcPageserverFaults,
  startFakeGrpcPageserver,
} from "../../fakes/grpc-pageserver.ts";
import {
  type FakePageserver,
  type PageserverFaults,
  startFakePageserver,
} from "../../fakes/pageserver.ts";

const TENANT = "3aa8fcc61f6d357410b7de754b1d9001";
const TIMELINE = "de200bd42b49cc1814412c7e592dd6e9";
const LSN = "0/169AD58";

let fakes: (FakePageserver | FakeGrpcPageserver)[] = [];
afterEach(async () => {
  await Promise.all(fakes.map((f) => f.stop()));
  fakes = [];
});

async function pageserver(
  tsid: string,
  lease: (lsn: string) => number | null,
  faults?: PageserverFaults,
): Promise<FakePageserver> {
  const f = await startFakePageserver({
    basebackup: () => new Uint8Array(0),
    token: "jwt",
    tenantId: TENANT,
    timelineId: TIMELINE,
    tenantShardId: tsid,
    lease,
    faults,
  });
  fakes.push(f);
  return f;
}

/** A fake clock: sleep() records the duration, advances time and returns at once. */
function fakeClock(onSleep?: (ms: number, n: number) => void) {
  const c = {
    now: 1_800_000_000_000,
    sleeps: [] as number[],
    sleep: async (ms: number, _signal: AbortSignal) => {
      c.sleeps.push(ms);
      c.now += ms;
      onSleep?.(ms, c.sleeps.length);
    },
  };
  return c;
}

describe("helpers", () => {
  test("tenantShardId is TenantShardId's Display", () => {
    expect(tenantShardId(TENANT, 0, 0)).toBe(TENANT);
    expect(tenantShardId(TENANT, 0, 1)).toBe(`${TENANT}-0001`);
    expect(tenantShardId(TENANT, 10, 16)).toBe(`${TENANT}-0a10`);
  });

  test("sleep after success: max(valid - 60 s, valid / 2)", () => {
    expect(leaseSleepMs(600_000)).toBe(540_000);
    expect(leaseSleepMs(100_000)).toBe(50_000);
    expect(leaseSleepMs(30_000)).toBe(15_000);
    expect(leaseSleepMs(-5)).toBe(0);
  });

  test("retry delays: 500 ms x1.5, truncated, capped at 60 s", () => {
    const next = leaseRetryDelays();
    const ds = Array.from({ length: 14 }, () => next());
    expect(ds.slice(0, 5)).toEqual([500, 750, 1125, 1687, 2531]);
    expect(ds.at(-1)).toBe(60_000);
    expect(ds.every((d, i) => i === 0 || d >= (ds[i - 1] as number))).toBe(true);
  });
});

describe("startLsnLeaseLoop", () => {
  test("leases every shard; renews on the formula's schedule using the minimum", async () => {
    let loop: ReturnType<typeof startLsnLeaseLoop> | null = null;
    const clock = fakeClock((_ms, n) => {
      if (n === 3) loop?.stop();
    });
    const s0 = await pageserver(`${TENANT}-0002`, () => clock.now + 600_000);
    const s1 = await pageserver(`${TENANT}-0102`, () => clock.now + 100_000);
    loop = startLsnLeaseLoop({
      tenantId: TENANT,
      pageservers: [
        {
          tenantShardId: tenantShardId(TENANT, 0, 2),
          shardId: "0002",
          protocol: "libpq",
          urls: [s0.url],
        },
        {
          tenantShardId: tenantShardId(TENANT, 1, 2),
          shardId: "0102",
          protocol: "libpq",
          urls: [s1.url],
        },
      ],
      timelineId: TIMELINE,
      lsn: LSN,
      token: "jwt",
      now: () => clock.now,
      sleep: clock.sleep,
    });
    await withTimeout(loop.done, 5000);
    expect(clock.sleeps).toEqual([50_000, 50_000, 50_000]);
    expect(s0.requests.map((r) => r.command)).toEqual(
      Array(3).fill(`lease lsn ${TENANT}-0002 ${TIMELINE} ${LSN} `),
    );
    expect(s1.requests).toHaveLength(3);
    expect(s0.requests[0]?.startup).toEqual({ client_encoding: "UTF8", user: "no_user" });
    expect([...s0.rejections, ...s1.rejections]).toEqual([]);
  });

  test("NULL from any shard is permanent: the loop ends and reports it", async () => {
    const clock = fakeClock();
    const ok = await pageserver(TENANT, () => clock.now + 600_000);
    const gone = await pageserver(TENANT, () => null);
    const failures: Error[] = [];
    const loop = startLsnLeaseLoop({
      tenantId: TENANT,
      pageservers: [
        { tenantShardId: TENANT, shardId: "0000", protocol: "libpq", urls: [gone.url, ok.url] },
      ],
      timelineId: TIMELINE,
      lsn: LSN,
      token: "jwt",
      now: () => clock.now,
      sleep: clock.sleep,
      onPermanentFailure: (e) => failures.push(e),
    });
    await withTimeout(loop.done, 5000);
    expect(failures.map((e) => e.message)).toEqual([PERMANENT_LEASE_ERROR]);
    expect(clock.sleeps).toEqual([]);
    expect(gone.requests).toHaveLength(1);
    expect(ok.requests).toHaveLength(1);
  });

  test("errors back off 500 ms x1.5, then the lease schedule resumes", async () => {
    let loop: ReturnType<typeof startLsnLeaseLoop> | null = null;
    const clock = fakeClock((ms) => {
      if (ms > 5000) loop?.stop();
    });
    const flaky = await pageserver(TENANT, () => clock.now + 600_000, { refuseConnections: 3 });
    loop = startLsnLeaseLoop({
      tenantId: TENANT,
      pageservers: () => [
        { tenantShardId: TENANT, shardId: "0000", protocol: "libpq", urls: [flaky.url] },
      ],
      timelineId: TIMELINE,
      lsn: LSN,
      token: () => "jwt",
      now: () => clock.now,
      sleep: clock.sleep,
    });
    await withTimeout(loop.done, 5000);
    expect(clock.sleeps).toEqual([500, 750, 1125, 540_000]);
    expect(flaky.requests).toHaveLength(1);
  });

  test("a wrong token is retried, not permanent", async () => {
    let loop: ReturnType<typeof startLsnLeaseLoop> | null = null;
    const clock = fakeClock((_ms, n) => {
      if (n === 2) loop?.stop();
    });
    const ps = await pageserver(TENANT, () => clock.now + 600_000);
    const failures: Error[] = [];
    loop = startLsnLeaseLoop({
      tenantId: TENANT,
      pageservers: [{ tenantShardId: TENANT, shardId: "0000", protocol: "libpq", urls: [ps.url] }],
      timelineId: TIMELINE,
      lsn: LSN,
      token: "wrong",
      now: () => clock.now,
      sleep: clock.sleep,
      onPermanentFailure: (e) => failures.push(e),
    });
    await withTimeout(loop.done, 5000);
    expect(clock.sleeps).toEqual([500, 750]);
    expect(failures).toEqual([]);
  });

  test("with real timers: wake() cuts a sleep short and stop() ends the loop promptly", async () => {
    const ps = await pageserver(TENANT, () => Date.now() + 3_600_000);
    const loop = startLsnLeaseLoop({
      tenantId: TENANT,
      pageservers: [{ tenantShardId: TENANT, shardId: "0000", protocol: "libpq", urls: [ps.url] }],
      timelineId: TIMELINE,
      lsn: LSN,
      token: "jwt",
    });
    const waitRequests = async (n: number) => {
      const deadline = Date.now() + 5000;
      while (ps.requests.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${ps.requests.length} lease requests`);
        await Bun.sleep(10);
      }
    };
    await waitRequests(1);
    loop.wake();
    await waitRequests(2);
    loop.stop();
    await withTimeout(loop.done, 2000);
    expect(ps.requests).toHaveLength(2);
  });
});

describe("startLsnLeaseLoop over gRPC", () => {
  async function grpcPageserver(
    shardId: string,
    lease: (lsn: bigint) => number | null,
    faults?: GrpcPageserverFaults,
  ): Promise<FakeGrpcPageserver> {
    const f = await startFakeGrpcPageserver({
      basebackup: () => new Uint8Array(0),
      token: "jwt",
      tenantId: TENANT,
      timelineId: TIMELINE,
      shardCount: Number.parseInt(shardId.slice(2), 16),
      leaseShardId: shardId,
      lease,
      faults,
    });
    fakes.push(f);
    return f;
  }

  test("LeaseLsn to every shard with its own shard id; the minimum expiry sets the sleep", async () => {
    let loop: ReturnType<typeof startLsnLeaseLoop> | null = null;
    const clock = fakeClock((_ms, n) => {
      if (n === 2) loop?.stop();
    });
    const s0 = await grpcPageserver("0002", () => clock.now + 600_000);
    const s1 = await grpcPageserver("0102", () => clock.now + 100_500);
    loop = startLsnLeaseLoop({
      tenantId: TENANT,
      pageservers: [
        {
          tenantShardId: tenantShardId(TENANT, 0, 2),
          shardId: "0002",
          protocol: "grpc",
          urls: [s0.url],
        },
        {
          tenantShardId: tenantShardId(TENANT, 1, 2),
          shardId: "0102",
          protocol: "grpc",
          urls: [s1.url],
        },
      ],
      timelineId: TIMELINE,
      lsn: LSN,
      token: "jwt",
      now: () => clock.now,
      sleep: clock.sleep,
    });
    await withTimeout(loop.done, 5000);
    expect([...s0.rejections, ...s1.rejections]).toEqual([]);
    // The Timestamp's milliseconds survive: 100.5 s valid -> sleep half of it.
    expect(clock.sleeps).toEqual([50_250, 50_250]);
    for (const [ps, shard] of [
      [s0, "0002"],
      [s1, "0102"],
    ] as const) {
      expect(ps.requests.map((r) => [r.method, r.fields.lsn, r.headers["neon-shard-id"]])).toEqual([
        ["LeaseLsn", 0x169ad58n, shard],
        ["LeaseLsn", 0x169ad58n, shard],
      ]);
      expect(ps.requests[0]?.headers).toMatchObject({
        "neon-tenant-id": TENANT,
        "neon-timeline-id": TIMELINE,
        authorization: "Bearer jwt",
      });
    }
  });

  test("FAILED_PRECONDITION on any shard is permanent", async () => {
    const clock = fakeClock();
    const ok = await grpcPageserver("0000", () => clock.now + 600_000);
    const gone = await grpcPageserver("0000", () => null);
    const failures: Error[] = [];
    const loop = startLsnLeaseLoop({
      tenantId: TENANT,
      pageservers: [
        { tenantShardId: TENANT, shardId: "0000", protocol: "grpc", urls: [ok.url, gone.url] },
      ],
      timelineId: TIMELINE,
      lsn: LSN,
      token: "jwt",
      now: () => clock.now,
      sleep: clock.sleep,
      onPermanentFailure: (e) => failures.push(e),
    });
    await withTimeout(loop.done, 5000);
    expect(failures.map((e) => e.message)).toEqual([PERMANENT_LEASE_ERROR]);
    expect(clock.sleeps).toEqual([]);
  });

  test("UNAVAILABLE and refused connections are retried at 500 ms x1.5", async () => {
    let loop: ReturnType<typeof startLsnLeaseLoop> | null = null;
    const clock = fakeClock((ms) => {
      if (ms > 100_000) loop?.stop();
    });
    const ps = await grpcPageserver("0000", () => clock.now + 600_000, {
      unavailable: 2,
      refuseConnections: 1,
    });
    loop = startLsnLeaseLoop({
      tenantId: TENANT,
      pageservers: [{ tenantShardId: TENANT, shardId: "0000", protocol: "grpc", urls: [ps.url] }],
      timelineId: TIMELINE,
      lsn: LSN,
      token: "jwt",
      now: () => clock.now,
      sleep: clock.sleep,
    });
    await withTimeout(loop.done, 5000);
    expect(clock.sleeps).toEqual([500, 750, 1125, 540_000]);
    expect(ps.requests).toHaveLength(3);
  });
});

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    Bun.sleep(ms).then(() => {
      throw new Error(`timed out after ${ms} ms`);
    }),
  ]);
}
