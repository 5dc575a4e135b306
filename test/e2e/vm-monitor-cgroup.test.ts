// The vm-monitor's memory side through the compiled `compute_ctl vm-monitor --cgroup`: a fake
// cgroup tree under COMPUTE_CTL_TESTING_HOST_ROOT whose memory.stat the test rewrites, and the
// fake autoscaler-agent. MemTotal is 1 GiB, so the threshold at connect is 870.4 MiB.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { FakeAgent, type FakeCgroupHost, makeFakeCgroupHost } from "../fakes/autoscaler-agent.ts";
import { cleanup, makeUserDir, waitFor } from "../support/proc.ts";
import { type StandaloneMonitor, startStandaloneMonitor } from "../support/vm-monitor.ts";

setDefaultTimeout(60_000);

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

let host: FakeCgroupHost;
let monitor: StandaloneMonitor;

beforeAll(async () => {
  host = makeFakeCgroupHost(await makeUserDir("vmm-host-"), { memTotalBytes: GiB });
  monitor = await startStandaloneMonitor({
    hostRoot: host.root,
    args: ["--cgroup", "neon-postgres"],
  });
});

afterAll(async () => {
  monitor?.proc.kill("SIGKILL");
  await cleanup();
});

/** Waits (a little) for a log line: lines are written at the end of an event-loop turn. */
const logged = (cond: () => boolean) =>
  waitFor(cond, { what: "the log line", timeoutMs: 3000, intervalMs: 10 }).catch(() => undefined);

/** Waits until the watcher has surely taken `ms` worth of new samples. */
const settle = (ms = 700) => Bun.sleep(ms);

describe("memory watcher and decisions (compute_ctl vm-monitor --cgroup)", () => {
  test("upscale requests: none below the threshold; above it id 3, then at most once a second", async () => {
    host.setUsage(500 * MiB);
    const linesBefore = monitor.stderr.lines().length;
    const agent = await FakeAgent.connected(monitor.url);
    await settle(800);
    expect(agent.upscaleRequests).toEqual([]);

    // 1000 MiB (split over both anon counters) is above 870.4 MiB.
    const wrote = performance.now();
    host.setUsage(600 * MiB, 400 * MiB);
    await agent.waitUpscaleRequests(4, 8000);
    const first = agent.upscaleRequests[0];
    expect(first!.id).toBe(3);
    // The mean of 5 crosses after 3 polls; give a loaded machine room.
    expect(first!.at - wrote).toBeLessThan(1500);
    expect(agent.upscaleRequests.slice(0, 4).map((r) => r.id)).toEqual([3, 5, 7, 9]);
    // Never two within 1 s, by the monitor's own clock (its log lines, in microseconds)...
    const upscaleLines = () =>
      monitor.stderr
        .lines()
        .slice(linesBefore)
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { timestamp: string; message: string; id?: number })
        .filter((l) => l.message.startsWith("cgroup memory stats are high enough"))
        .slice(0, 4);
    // The log is written at the end of the event-loop turn that sent the request.
    await logged(() => upscaleLines().length >= 4);
    const sent = upscaleLines();
    expect(sent.map((l) => l.id)).toEqual([3, 5, 7, 9]);
    const micros = (t: string) => Date.parse(t) * 1000 + (Number(t.slice(23, 26)) || 0);
    for (let i = 1; i < 4; i++) {
      expect(micros(sent[i]!.timestamp) - micros(sent[i - 1]!.timestamp)).toBeGreaterThanOrEqual(
        1_000_000,
      );
    }
    // ...and no gap over 1.5 s as the agent sees it (with room for a loaded machine).
    for (let i = 1; i < 4; i++) {
      const gap = agent.upscaleRequests[i]!.at - agent.upscaleRequests[i - 1]!.at;
      expect(gap).toBeLessThan(1800);
    }

    // Back under the threshold: the requests stop.
    host.setUsage(100 * MiB);
    await settle(1200);
    const count = agent.upscaleRequests.length;
    await settle(1500);
    expect(agent.upscaleRequests.length).toBe(count);
    expect(agent.violations).toEqual([]);

    await logged(() =>
      monitor.stderr.text.includes("cgroup memory stats are high enough to upscale"),
    );
    expect(monitor.stderr.text).toContain("cgroup memory stats are high enough to upscale");
    agent.close();
  });

  test("downscale: refused with too few samples, accepted, refused for a low threshold", async () => {
    host.setUsage(300 * MiB);
    const agent = await FakeAgent.connect(monitor.url);
    // The request queues behind the handshake and the setup; only the first sample is in then.
    const [hs, early] = await Promise.all([
      agent.handshake({ min: 1, max: 1 }),
      agent.downscaleRequest({ cpu: 1, mem: GiB }),
    ]);
    expect(hs).toEqual({ version: 1 });
    expect(early).toEqual({
      type: "DownscaleResult",
      Ok: false,
      Status: "haven't received enough cgroup memory stats yet",
      id: 2,
    });

    await settle();
    expect(await agent.downscaleRequest({ cpu: 1, mem: GiB })).toEqual({
      type: "DownscaleResult",
      Ok: true,
      Status: "set cgroup memory threshold from 870.4 MiB to 785.4 MiB, of new total 924 MiB",
      id: 4,
    });

    host.setUsage(700 * MiB);
    await settle();
    expect(await agent.downscaleRequest({ cpu: 1, mem: GiB })).toEqual({
      type: "DownscaleResult",
      Ok: false,
      Status:
        "calculated memory threshold too low: 785.4 MiB (new threshold) < 700 (current usage) + 100 (downscale buffer)",
      id: 6,
    });
    expect(agent.violations).toEqual([]);
    agent.close();
  });

  test("an upscale notification moves the threshold; a new connection resets it to MemTotal's", async () => {
    host.setUsage(100 * MiB);
    const agent = await FakeAgent.connected(monitor.url);
    expect(await agent.upscaleNotification({ cpu: 2, mem: 2 * GiB })).toEqual({
      type: "UpscaleConfirmation",
      id: 2,
    });
    // 1000 MiB is above the old 870.4 MiB but below the new 1655.8 MiB.
    host.setUsage(1000 * MiB);
    await settle(1500);
    expect(agent.upscaleRequests).toEqual([]);
    host.setUsage(1700 * MiB);
    await agent.waitUpscaleRequests(1, 3000);
    expect(agent.upscaleRequests[0]!.id).toBe(3);

    // A new agent connection starts over from MemTotal: 1000 MiB is above 870.4 MiB again.
    host.setUsage(1000 * MiB);
    const second = await FakeAgent.connected(monitor.url);
    await agent.closed;
    await second.waitUpscaleRequests(1, 3000);
    expect(second.upscaleRequests[0]!.id).toBe(3);
    expect([...agent.violations, ...second.violations]).toEqual([]);
    second.close();
    host.setUsage(0);
  });

  test("a cgroup root without the memory controller fails the setup: closed after the handshake", async () => {
    const bare = makeFakeCgroupHost(await makeUserDir("vmm-bare-"), {
      memTotalBytes: GiB,
      controllers: "cpu io pids",
    });
    const m = await startStandaloneMonitor({
      hostRoot: bare.root,
      args: ["--cgroup", "neon-postgres"],
    });
    try {
      const agent = await FakeAgent.connect(m.url);
      expect(await agent.handshake({ min: 1, max: 1 })).toEqual({ version: 1 });
      const closed = await agent.closed;
      expect(closed.code).toBe(1011);
      await logged(() => m.stderr.text.includes("could not find memory subsystem"));
      expect(m.stderr.text).toContain("could not find memory subsystem");
    } finally {
      m.proc.kill("SIGTERM");
      await m.exited;
    }
  });

  test("a watcher that stalls: a downscale after 5 s without a sample is an InternalError", async () => {
    const stalled = makeFakeCgroupHost(await makeUserDir("vmm-stall-"), { memTotalBytes: GiB });
    const m = await startStandaloneMonitor({
      hostRoot: stalled.root,
      args: ["--cgroup", "neon-postgres"],
    });
    try {
      const agent = await FakeAgent.connected(m.url);
      await settle(300);
      // A FIFO nobody writes to: the next read of memory.stat never returns.
      rmSync(stalled.statPath);
      const mk = Bun.spawnSync(["mkfifo", "-m", "0644", stalled.statPath]);
      expect(mk.exitCode).toBe(0);
      await settle(5600);
      expect(await agent.downscaleRequest({ cpu: 1, mem: GiB })).toEqual({
        type: "InternalError",
        error: "failed to downscale",
        id: 2,
      });
      const stale =
        "haven't gotten cgroup memory stats recently enough to determine downscaling information";
      await logged(() => m.stderr.text.includes(stale));
      expect(m.stderr.text).toContain(stale);
      // Still serving the agent otherwise.
      expect(await agent.healthCheck()).toEqual({ type: "HealthCheck", id: 4 });
    } finally {
      m.proc.kill("SIGTERM");
      const code = await Promise.race([m.exited, Bun.sleep(5000).then(() => "hung")]);
      if (code === "hung") m.proc.kill("SIGKILL");
      expect(code).toBe(0);
    }
  });

  test("SIGTERM: the agent is closed, the process exits 0 within 5 s, the port is free", async () => {
    const agent = await FakeAgent.connected(monitor.url);
    const t = performance.now();
    monitor.proc.kill("SIGTERM");
    const code = await monitor.exited;
    expect(performance.now() - t).toBeLessThan(5000);
    expect(code).toBe(0);
    const closed = await agent.closed;
    expect(closed.code).toBe(1001);
    await waitFor(
      async () => {
        try {
          await FakeAgent.connect(monitor.url, 500);
          return false;
        } catch {
          return true;
        }
      },
      { what: "the listener to be gone", timeoutMs: 2000 },
    );
  });
});
