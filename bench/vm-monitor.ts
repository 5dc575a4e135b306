// The vm-monitor's three figures, through the compiled binary and the fake autoscaler-agent:
//
// 1. Upscale reaction: from writing a memory.stat whose usage is twice the threshold to the agent
//    receiving UpscaleRequest, p50/p99 over 50 trials (`compute_ctl vm-monitor --cgroup`, fake
//    cgroup host, MemTotal 1 GiB). Floor: the polls the 5-sample mean needs to cross from zero
//    (3 × 100 ms), plus the WebSocket round trip measured in the same run. Goal: p99 ≤ floor + 100 ms.
// 2. Downscale answer latency p99, the ALTER SYSTEM and reload included (real Postgres 15 with the
//    file-cache GUCs as placeholders). Floor: a HealthCheck round trip plus the same three statements
//    run directly over postgres.js, both measured in the same run. Goal: ≤ 50 ms.
// 3. RSS and CPU the monitor adds to an idle running compute over 60 s: a compute with AUTOSCALING
//    and an agent health-checking every 5 s, against one without, side by side.
//    Goal: ≤ 5 MB and ≤ 0.5% of a core.
import postgres from "postgres";
import { FakeAgent, makeFakeCgroupHost } from "../test/fakes/autoscaler-agent.ts";
import { startCompute } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { startTestPostgres } from "../test/support/pg.ts";
import { cleanup, makeUserDir, waitFor } from "../test/support/proc.ts";
import { startLocalStack } from "../test/support/stack.ts";
import { FAST, type Started } from "../test/support/started.ts";
import { startAutoscaling, startStandaloneMonitor } from "../test/support/vm-monitor.ts";
import { memoryMiB, percentile, table } from "./_util.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TRIALS = Number(process.env.BENCH_TRIALS ?? 50);
const DOWNSCALES = Number(process.env.BENCH_DOWNSCALES ?? 200);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const THRESHOLD = Math.floor(GiB * 0.85);

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

async function healthRtts(agent: FakeAgent, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await agent.healthCheck();
    out.push(performance.now() - t);
  }
  return out;
}

async function upscaleReaction(): Promise<void> {
  const host = makeFakeCgroupHost(await makeUserDir("bench-vmm-"), { memTotalBytes: GiB });
  const m = await startStandaloneMonitor({
    hostRoot: host.root,
    args: ["--cgroup", "neon-postgres"],
    env: { RUST_LOG: "warn" },
  });
  try {
    const agent = await FakeAgent.connected(m.url);
    const rtt = sorted(await healthRtts(agent, 50));
    const reactions: number[] = [];
    let lastRequestAt = 0;
    for (let i = 0; i < TRIALS; i++) {
      host.setUsage(0);
      // Five zero samples, and more than the 1 s rate limit since the last request.
      await Bun.sleep(Math.max(600, lastRequestAt + 1100 - performance.now()));
      const seen = agent.upscaleRequests.length;
      const t = performance.now();
      host.setUsage(2 * THRESHOLD);
      await agent.waitUpscaleRequests(seen + 1, 5000);
      const at = agent.upscaleRequests[seen]!.at;
      reactions.push(at - t);
      lastRequestAt = at;
    }
    if (agent.violations.length) throw new Error(`agent violations: ${agent.violations}`);
    const r = sorted(reactions);
    const floor = 300 + percentile(rtt, 50);
    console.log(`\nupscale reaction (${TRIALS} trials, usage 2× the threshold):`);
    table([
      ["", "p50 ms", "p99 ms", "max ms"],
      ["UpscaleRequest after memory.stat write", percentile(r, 50), percentile(r, 99), r.at(-1)!],
      ["floor: 3 polls + WebSocket RTT p50", floor, floor, floor],
      ["WebSocket HealthCheck RTT", percentile(rtt, 50), percentile(rtt, 99), rtt.at(-1)!],
    ]);
    console.log(
      `p99 − floor = ${(percentile(r, 99) - floor).toFixed(1)} ms (goal ≤ 100); p99/floor = ${(percentile(r, 99) / floor).toFixed(2)}`,
    );
    agent.close();
  } finally {
    m.proc.kill("SIGTERM");
    await m.exited;
  }
}

async function downscaleLatency(): Promise<void> {
  const pg = await startTestPostgres({
    settings: { "neon.max_file_cache_size": "1GB", "neon.file_cache_size_limit": "0" },
  });
  const host = makeFakeCgroupHost(await makeUserDir("bench-vmm-"), { memTotalBytes: 4 * GiB });
  const m = await startStandaloneMonitor({
    hostRoot: host.root,
    args: [
      "--cgroup",
      "neon-postgres",
      "--pgconnstr",
      `host=127.0.0.1 port=${pg.port} dbname=postgres user=cloud_admin application_name=vm-monitor`,
    ],
    env: { RUST_LOG: "warn" },
  });
  const direct = postgres({
    host: "127.0.0.1",
    port: pg.port,
    username: "cloud_admin",
    database: "postgres",
    max: 1,
    fetch_types: false,
    onnotice: () => {},
  });
  try {
    const agent = await FakeAgent.connected(m.url);
    await Bun.sleep(300);
    const rtt = sorted(await healthRtts(agent, DOWNSCALES));
    // Interleaved, so the machine's load drifts over both alike.
    const answers: number[] = [];
    const sql: number[] = [];
    for (let i = 0; i < DOWNSCALES; i++) {
      let t = performance.now();
      const r = await agent.downscaleRequest({ cpu: 1, mem: (i % 2 ? 2 : 3) * GiB });
      answers.push(performance.now() - t);
      if (r.type !== "DownscaleResult" || !r.Ok) throw new Error(`downscale: ${JSON.stringify(r)}`);
      t = performance.now();
      await direct
        .unsafe("SELECT pg_size_bytes(current_setting('neon.max_file_cache_size'))::text")
        .simple();
      await direct
        .unsafe(`ALTER SYSTEM SET neon.file_cache_size_limit = ${500 + (i % 2)}`)
        .simple();
      await direct.unsafe("SELECT pg_reload_conf()").simple();
      sql.push(performance.now() - t);
    }
    const a = sorted(answers);
    const s = sorted(sql);
    const floor99 = percentile(rtt, 99) + percentile(s, 99);
    console.log(`\ndownscale answer (${DOWNSCALES} requests, each an ALTER SYSTEM + reload):`);
    table([
      ["", "p50 ms", "p99 ms", "max ms"],
      ["DownscaleRequest → DownscaleResult", percentile(a, 50), percentile(a, 99), a.at(-1)!],
      ["floor: HealthCheck RTT", percentile(rtt, 50), percentile(rtt, 99), rtt.at(-1)!],
      ["floor: the same SQL over postgres.js", percentile(s, 50), percentile(s, 99), s.at(-1)!],
    ]);
    console.log(
      `p99 = ${percentile(a, 99).toFixed(1)} ms (goal ≤ 50); p99 / (RTT p99 + SQL p99) = ${(percentile(a, 99) / floor99).toFixed(2)}`,
    );
    agent.close();
  } finally {
    await direct.end({ timeout: 0 });
    m.proc.kill("SIGTERM");
    await m.exited;
    await pg.stop();
  }
}

/** utime + stime of a process, in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Bun.file(`/proc/${pid}/stat`).text();
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function idleCost(): Promise<void> {
  const withMonitor = await startAutoscaling({});
  const stack = await startLocalStack({});
  const key = await ed25519Key();
  const compute = await startCompute({
    config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
    connstr: stack.connstr,
    pgbin: stack.pgbin.pgbin,
    pgdata: stack.pgdata,
    env: { ...FAST, AUTOSCALING: undefined },
  });
  const without: Started = {
    stack,
    compute,
    key,
    token: await key.sign({ compute_id: compute.computeId }),
  };
  const computes = [withMonitor, without];
  try {
    for (const s of computes) {
      await waitFor(
        async () =>
          ((await (await s.compute.get("/status", s.token)).json()) as { status: string })
            .status === "running",
        { what: "running", timeoutMs: 60_000 },
      );
    }
    const agent = await waitFor(() => FakeAgent.connected(withMonitor.url), {
      what: "the vm-monitor",
      timeoutMs: 10_000,
    });
    // Let both settle (start-up garbage, the first collections) before measuring.
    await Bun.sleep(5000);
    const pids = computes.map((s) => s.compute.proc.pid);
    const cpu0 = await Promise.all(pids.map(cpuSeconds));
    const rss0 = await Promise.all(pids.map(memoryMiB));
    const t0 = performance.now();
    const rssSamples: number[][] = [[], []];
    const end = t0 + IDLE_SECONDS * 1000;
    let nextHealth = t0;
    while (performance.now() < end) {
      if (performance.now() >= nextHealth) {
        await agent.healthCheck();
        nextHealth += 5000;
      }
      const rss = await Promise.all(pids.map(memoryMiB));
      for (const [i, r] of rss.entries()) rssSamples[i]!.push(r.rss);
      await Bun.sleep(1000);
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = await Promise.all(pids.map(cpuSeconds));
    const cpuPct = cpu1.map((c, i) => ((c - cpu0[i]!) / seconds) * 100);
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const rssAvg = rssSamples.map(avg);
    const rssMax = rssSamples.map((xs) => Math.max(...xs));
    console.log(
      `\nidle compute over ${seconds.toFixed(0)} s (the agent health-checks every 5 s; compute_ctl only, not Postgres):`,
    );
    table([
      ["", "RSS start MiB", "RSS mean MiB", "RSS max MiB", "CPU % of a core"],
      ["AUTOSCALING + agent", rss0[0]!.rss, rssAvg[0]!, rssMax[0]!, cpuPct[0]!],
      ["floor: no AUTOSCALING", rss0[1]!.rss, rssAvg[1]!, rssMax[1]!, cpuPct[1]!],
      [
        "added by the vm-monitor",
        rss0[0]!.rss - rss0[1]!.rss,
        rssAvg[0]! - rssAvg[1]!,
        rssMax[0]! - rssMax[1]!,
        cpuPct[0]! - cpuPct[1]!,
      ],
    ]);
    console.log("goal: ≤ 5 MB and ≤ 0.5% of a core added");
    agent.close();
  } finally {
    for (const s of computes) {
      await s.compute.post("/terminate?mode=immediate", s.token).catch(() => {});
      await s.compute.exited;
      await s.stack.stop();
    }
  }
}

try {
  const only = process.env.BENCH_ONLY;
  if (!only || only === "upscale") await upscaleReaction();
  if (!only || only === "downscale") await downscaleLatency();
  if (!only || only === "idle") await idleCost();
} finally {
  await cleanup();
}
