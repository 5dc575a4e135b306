// The vm-monitor in a running compute through the compiled binary with AUTOSCALING set: the fake
// autoscaler-agent on --vm-monitor-addr, a fake cgroup host (MemTotal 1 GiB) under
// COMPUTE_CTL_TESTING_HOST_ROOT, a `cgexec` shim first on PATH, and real Postgres 15 whose
// postgresql.conf carries the neon file-cache GUCs as placeholders (max 1GB).
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { FakeAgent, makeFakeCgroupHost } from "../fakes/autoscaler-agent.ts";
import { startCompute } from "../support/compute.ts";
import { ed25519Key, jwks } from "../support/jwt.ts";
import { freePort } from "../support/ports.ts";
import { cleanup, makeUserDir, waitFor, waitForLine } from "../support/proc.ts";
import { startLocalStack } from "../support/stack.ts";
import { FAST, psql, type Started, terminate, waitStatus } from "../support/started.ts";
import { startAutoscaling, startStandaloneMonitor } from "../support/vm-monitor.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

async function autoConfLimit(s: Started): Promise<string | null> {
  const text = await readFile(join(s.stack.pgdata, "postgresql.auto.conf"), "utf8");
  return text.match(/^neon\.file_cache_size_limit = '(\d+)'$/m)?.[1] ?? null;
}

async function vmMonitorBackends(s: Started): Promise<number> {
  return Number(
    await psql(
      s,
      "select count(*) from pg_stat_activity where application_name = 'vm-monitor' and pid <> pg_backend_pid()",
    ),
  );
}

async function metric(s: Started, name: string): Promise<number> {
  const text = await (await s.compute.get("/metrics")).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, "m"));
  if (!m) throw new Error(`${name} not in /metrics`);
  return Number(m[1]);
}

/** Connects once the monitor listens (it starts only once the compute is running). */
function connectWhenUp(url: string): Promise<FakeAgent> {
  return waitFor(() => FakeAgent.connect(url, 1000), {
    what: "the vm-monitor to listen",
    timeoutMs: 10_000,
  });
}

describe("vm-monitor in a compute with AUTOSCALING", () => {
  test("handshakes, messages, file cache sizing over SQL, one agent at a time, stops with Postgres", async () => {
    const s = await startAutoscaling({});
    await waitStatus(s, "running");
    expect(await metric(s, "compute_ctl_vm_monitor_connected")).toBe(0);

    // --- handshake cases ---
    const a = await connectWhenUp(s.url);
    expect(await a.handshake({ min: 1, max: 1 })).toEqual({ version: 1 });
    // The setup set the file cache for MemTotal (1 GiB → 698 MiB) over one connection.
    await waitFor(async () => (await autoConfLimit(s)) === "698", {
      what: "ALTER SYSTEM to land",
    });
    expect(await psql(s, "select current_setting('neon.file_cache_size_limit')")).toBe("698");
    expect(await vmMonitorBackends(s)).toBe(1);
    await waitFor(async () => (await metric(s, "compute_ctl_vm_monitor_connected")) === 1, {
      what: "connected = 1",
    });
    expect(await metric(s, "compute_ctl_vm_monitor_file_cache_size_bytes")).toBe(698 * MiB);
    expect(await metric(s, "compute_ctl_vm_monitor_memory_threshold_bytes")).toBe(
      Math.floor(GiB * 0.85),
    );

    // --- messages ---
    expect(await a.healthCheck()).toEqual({ type: "HealthCheck", id: 2 });
    a.sendRaw('{"type":"HealthCheck","id":100}');
    a.sendRaw(new Uint8Array([1, 2, 3]));
    a.sendRaw('{"content":{"error":"no such id"},"type":"InvalidMessage","id":101}');
    a.sendRaw('{"content":{"error":"oops"},"type":"InternalError","id":103}');
    expect(await a.healthCheck()).toEqual({ type: "HealthCheck", id: 4 });
    // The content-less HealthCheck was answered with exactly its id; nothing answered the rest.
    const replies = a.received.slice(1);
    expect(replies).toEqual([
      '{"type":"HealthCheck","id":2}',
      '{"type":"HealthCheck","id":100}',
      '{"type":"HealthCheck","id":4}',
    ]);
    // id 100 was not one of ours: the strict agent flags it, and nothing else.
    expect(a.violations).toEqual(['reply to an unknown id: {"type":"HealthCheck","id":100}']);
    a.violations.length = 0;

    // Upscale to 8 GiB: 6069 MiB wanted, capped at neon.max_file_cache_size = 1 GiB.
    expect(await a.upscaleNotification({ cpu: 4, mem: 8 * GiB })).toEqual({
      type: "UpscaleConfirmation",
      id: 6,
    });
    expect(await autoConfLimit(s)).toBe("1024");
    expect(await psql(s, "select current_setting('neon.file_cache_size_limit')")).toBe("1024");
    expect(await metric(s, "compute_ctl_vm_monitor_file_cache_size_bytes")).toBe(1024 * MiB);
    expect(s.compute.stderr.text).toContain(
      "file cache was set to a different size than we wanted: target = 6069 MiB, actual = 1024 MiB",
    );

    await Bun.sleep(300);
    expect(await a.downscaleRequest({ cpu: 1, mem: 2 * GiB })).toEqual({
      type: "DownscaleResult",
      Ok: true,
      Status:
        "set file cache size to 1024 MiB; set cgroup memory threshold from 6878.2 MiB to 1655.8 MiB, of new total 1948 MiB",
      id: 8,
    });
    expect(await a.downscaleRequest({ cpu: 0.25, mem: GiB })).toMatchObject({
      Ok: true,
      Status:
        "set file cache size to 607 MiB; set cgroup memory threshold from 1655.8 MiB to 785.4 MiB, of new total 924 MiB",
    });
    expect(await autoConfLimit(s)).toBe("607");
    expect(a.violations).toEqual([]);

    // --- a second agent replaces the first, and its Postgres connection ---
    const b = await FakeAgent.connected(s.url);
    const closedA = await a.closed;
    expect(closedA.code).toBe(1000);
    // The new connection resets the file cache to MemTotal's size.
    await waitFor(async () => (await autoConfLimit(s)) === "698", { what: "the reset to 698" });
    await waitFor(async () => (await vmMonitorBackends(s)) === 1, {
      what: "one vm-monitor connection",
    });
    expect(await b.healthCheck()).toEqual({ type: "HealthCheck", id: 2 });
    // Memory pressure in the cgroup: an UpscaleRequest, counted in /metrics.
    s.host.setUsage(1000 * MiB);
    await b.waitUpscaleRequests(1, 5000);
    expect(b.upscaleRequests[0]!.id).toBe(3);
    s.host.setUsage(0);
    expect(await metric(s, "compute_ctl_vm_monitor_upscale_requests_total")).toBeGreaterThanOrEqual(
      1,
    );

    // --- handshake refusals ---
    const c = await FakeAgent.connect(s.url);
    expect(await c.handshake({ min: 2, max: 3 })).toEqual({
      error:
        "Received protocol version range <unknown: 2> to <unknown: 3> which does not overlap with v1.0",
    });
    await c.closed;
    // The failed connection still replaced b, as in the reference.
    await b.closed;
    expect(await (await FakeAgent.connect(s.url)).handshake({ min: 0, max: 5 })).toEqual({
      version: 1,
    });
    const d = await FakeAgent.connect(s.url);
    expect(await d.handshake({ min: 3, max: 1 })).toBeNull();
    expect(d.received).toEqual([]);
    const e = await FakeAgent.connect(s.url);
    e.sendRaw(new Uint8Array([123, 125]));
    expect((await e.closed).code).toBe(1002);
    expect(e.received).toEqual([]);

    // No first frame: closed by the 4 s setup bound.
    const silent = await FakeAgent.connect(s.url);
    const t0 = performance.now();
    const closedSilent = await silent.closed;
    const waited = closedSilent.at - t0;
    expect(waited).toBeGreaterThan(3500);
    expect(waited).toBeLessThan(7000);
    expect(s.compute.stderr.text).toContain("creating monitor timed out");

    // --- malformed frames after the handshake close the connection, unanswered ---
    for (const bad of [
      "{not json",
      '{"content":{},"type":"Bogus","id":2}',
      '{"content":{},"type":"HealthCheck"}',
      '{"type":"DownscaleRequest","id":2}',
    ]) {
      const m = await FakeAgent.connected(s.url);
      m.sendRaw(bad);
      expect((await m.closed).code).toBe(1002);
      expect(m.received).toEqual(['{"version":1}']);
    }
    await waitFor(async () => (await metric(s, "compute_ctl_vm_monitor_connected")) === 0, {
      what: "connected = 0",
    });
    expect(s.compute.stderr.text).toMatch(/downscale to 2048 MiB approved: set file cache size/);

    // --- it stops when Postgres exits ---
    const last = await FakeAgent.connected(s.url);
    await terminate(s, "immediate");
    await last.closed;
    await expect(FakeAgent.connect(s.url, 1000)).rejects.toThrow();
    expect(await s.compute.exited).toBe(0);
  });

  test("disable_lfc_resizing: no SQL at all; only the cgroup part decides", async () => {
    const s = await startAutoscaling({ spec: { disable_lfc_resizing: true } });
    await waitStatus(s, "running");
    const a = await connectWhenUp(s.url);
    expect(await a.handshake({ min: 1, max: 1 })).toEqual({ version: 1 });
    await Bun.sleep(400);
    expect(await a.upscaleNotification({ cpu: 2, mem: 2 * GiB })).toMatchObject({
      type: "UpscaleConfirmation",
    });
    expect(await a.downscaleRequest({ cpu: 1, mem: GiB })).toEqual({
      type: "DownscaleResult",
      Ok: true,
      Status: "set cgroup memory threshold from 1655.8 MiB to 785.4 MiB, of new total 924 MiB",
      id: 4,
    });
    expect(await vmMonitorBackends(s)).toBe(0);
    expect(await autoConfLimit(s)).toBeNull();
    expect(await psql(s, "select current_setting('neon.file_cache_size_limit')")).toBe("0");
    expect(await metric(s, "compute_ctl_vm_monitor_file_cache_size_bytes")).toBe(0);
    a.close();
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
  });

  test("AUTOSCALING empty still counts; a taken address is one ERROR line and Postgres keeps serving", async () => {
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen({ host: "127.0.0.1", port }, r));
    try {
      const s = await startAutoscaling({ autoscaling: "", vmMonitorPort: port });
      await waitStatus(s, "running");
      const [line] = await waitForLine(s.compute.stderr, /^.*could not start the vm-monitor.*$/);
      expect(line).toContain(`127.0.0.1:${port}`);
      expect(line).toContain("ERROR");
      expect(line).toContain("failed to bind");
      expect(s.compute.stderr.text.match(/could not start the vm-monitor/g)).toHaveLength(1);
      expect(await psql(s, "select 1")).toBe("1");
      await terminate(s, "immediate");
      expect(await s.compute.exited).toBe(0);
    } finally {
      blocker.close();
    }
  });

  test("without AUTOSCALING nothing listens", async () => {
    const stack = await startLocalStack({});
    const port = await freePort();
    const key = await ed25519Key();
    const compute = await startCompute({
      config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata: stack.pgdata,
      env: { ...FAST, AUTOSCALING: undefined },
      args: ["--vm-monitor-addr", `127.0.0.1:${port}`],
    });
    const token = await key.sign({ compute_id: compute.computeId });
    const s: Started = { stack, compute, key, token };
    await waitStatus(s, "running");
    await Bun.sleep(300);
    await expect(FakeAgent.connect(`ws://127.0.0.1:${port}/monitor`, 1000)).rejects.toThrow();
    await terminate(s, "immediate");
    expect(await compute.exited).toBe(0);
  });
});

describe("transport and Postgres down (compute_ctl vm-monitor)", () => {
  test("other paths 404, a plain GET of /monitor 4xx; Postgres down: handshake, then closed within 4 s", async () => {
    const host = makeFakeCgroupHost(await makeUserDir("vmm-host-"), { memTotalBytes: GiB });
    const deadPort = await freePort();
    const m = await startStandaloneMonitor({
      hostRoot: host.root,
      args: ["--pgconnstr", `host=127.0.0.1 port=${deadPort} user=cloud_admin dbname=postgres`],
    });
    try {
      const http = `http://127.0.0.1:${m.port}`;
      expect((await fetch(`${http}/`)).status).toBe(404);
      expect((await fetch(`${http}/other`)).status).toBe(404);
      const plain = await fetch(`${http}/monitor`);
      expect(plain.status).toBeGreaterThanOrEqual(400);
      expect(plain.status).toBeLessThan(500);

      const agent = await FakeAgent.connect(m.url);
      const t0 = performance.now();
      expect(await agent.handshake({ min: 1, max: 1 })).toEqual({ version: 1 });
      const closed = await agent.closed;
      expect(closed.at - t0).toBeLessThan(4500);
      expect(m.stderr.text).toContain("failed to create file cache");
    } finally {
      m.proc.kill("SIGTERM");
      expect(await m.exited).toBe(0);
    }
  });

  test("neither --cgroup nor --pgconnstr: every downscale is approved, nothing managed", async () => {
    const host = makeFakeCgroupHost(await makeUserDir("vmm-host-"), { memTotalBytes: GiB });
    const m = await startStandaloneMonitor({ hostRoot: host.root });
    try {
      const agent = await FakeAgent.connected(m.url);
      expect(await agent.downscaleRequest({ cpu: 1, mem: 256 * MiB })).toEqual({
        type: "DownscaleResult",
        Ok: true,
        Status: "monitor is not managing cgroup or file cache",
        id: 2,
      });
      expect(await agent.upscaleNotification({ cpu: 2, mem: 2 * GiB })).toEqual({
        type: "UpscaleConfirmation",
        id: 4,
      });
      expect(agent.violations).toEqual([]);
    } finally {
      m.proc.kill("SIGTERM");
      expect(await m.exited).toBe(0);
    }
  });

  test("a bad --pgconnstr is one line and exit 1", async () => {
    const host = makeFakeCgroupHost(await makeUserDir("vmm-host-"), { memTotalBytes: GiB });
    const { runBinary } = await import("../support/binary.ts");
    const r = await runBinary(["vm-monitor", "--pgconnstr", "host=h bogus=1"], {
      env: { COMPUTE_CTL_TESTING_HOST_ROOT: host.root },
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('error: invalid --pgconnstr: invalid connection option "bogus"');
  });
});
