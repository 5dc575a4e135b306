// Soak: a compute on the local stack kept busy for SOAK_MINUTES (default 30): SOAK_CLIENTS (50)
// clients looping on /status and /metrics, a reconfigure every 10 s, the periodic LFC offload
// every 5 s (offload_lfc_interval_seconds) to a fake endpoint storage, the activity monitor, and
// with AUTOSCALING=1 the vm-monitor with a fake autoscaler-agent sending a health check and a
// downscale request every 5 s.
//
// Memory is measured two ways. The raw RSS of compute_ctl is read from /proc every 2 s: its
// minimum and maximum per minute show how much garbage comes and goes between collections. At the
// end of each minute compute_ctl runs a full garbage collection (GET /testing/memory, enabled by
// COMPUTE_CTL_TESTING_MEMORY_PROBE=1) and reports its RSS, heap and live objects right after it:
// what is still there then is referenced, not garbage. The verdict's RSS growth is the median
// post-GC RSS of the last 3 minutes minus the median post-GC RSS of minutes 4-6 (around the end
// of the 5-minute warm-up): at most 10 MiB. Medians of three, because a single post-GC reading
// moves by a few MiB with what the allocator has not yet returned; the highest post-GC reading
// after minute 5 is printed beside it. Descriptors must stay within 2 of each other after the warm-up,
// Postgres client connections within 1, and nothing may fail: no request error, every reconfigure
// `running`, every offload without error, every agent request answered as asked.
// Run only when named: `bun bench/run.ts soak` (not part of the default run, not in CI).
import { readdirSync, readFileSync } from "node:fs";
import postgres from "postgres";
import { FakeAgent } from "../test/fakes/autoscaler-agent.ts";
import { jsonOf } from "../test/support/compute.ts";
import { endpointStorageFixture } from "../test/support/lfc.ts";
import { cleanup, waitFor } from "../test/support/proc.ts";
import { type Started, start, waitStatus } from "../test/support/started.ts";
import { startAutoscaling } from "../test/support/vm-monitor.ts";
import { median, table } from "./_util.ts";

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 50);
const AUTOSCALING = !!process.env.AUTOSCALING;
const WARMUP_MIN = Math.min(5, Math.max(1, MINUTES - 1));
const RSS_BOUND_MIB = 10;
const MiB = 1024 * 1024;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

const counters = {
  requests: 0,
  errors: 0,
  reconfigures: 0,
  healthChecks: 0,
  downscalesOk: 0,
  downscalesDenied: 0,
};
const errors: string[] = [];
function error(what: string) {
  counters.errors++;
  if (errors.length < 20) errors.push(what);
}

interface Probe {
  rss_before_gc: number;
  rss: number;
  heap_used: number;
  object_count: number;
  object_types: Record<string, number>;
}

interface Sample {
  rawMin: number;
  rawMax: number;
  gcRss: number;
  heapUsed: number;
  objects: number;
  types: Record<string, number>;
  fds: number;
  conns: number;
}

let stop = false;
try {
  const es = await endpointStorageFixture();
  const specFields = { ...es.specFields, offload_lfc_interval_seconds: 5 };
  const env = { COMPUTE_CTL_TESTING_MEMORY_PROBE: "1" };
  const template = { initSql: es.standinSql };
  let s: Started;
  let agent: FakeAgent | null = null;
  // The access log is ~300 MB a minute under this load: only its tail is kept here.
  const stderrTailChars = 1 << 20;
  if (AUTOSCALING) {
    s = await startAutoscaling({ spec: specFields, template, env, stderrTailChars });
  } else {
    s = await start({
      safekeepers: "agree",
      skipCatalogUpdates: false,
      template,
      spec: specFields,
      env,
      stderrTailChars,
    });
  }
  await waitStatus(s, "running", 60_000);
  if (AUTOSCALING) {
    const url = (s as Awaited<ReturnType<typeof startAutoscaling>>).url;
    // The vm-monitor starts once the compute is running: retry the dial for a while.
    agent = await waitFor(() => FakeAgent.connect(url).catch(() => undefined), {
      what: "the vm-monitor to accept the agent",
      timeoutMs: 30_000,
    });
    const hs = await agent.handshake({ min: 1, max: 1 });
    if (hs?.version !== 1) throw new Error(`vm-monitor handshake: ${JSON.stringify(hs)}`);
  }
  const pid = s.compute.proc.pid;
  const sql = postgres(s.stack.connstr, { max: 1, onnotice: () => {} });
  console.log(
    `soak: ${MINUTES} min, ${CLIENTS} clients, AUTOSCALING=${AUTOSCALING ? 1 : 0}, compute_ctl pid ${pid}, load ${readFileSync("/proc/loadavg", "utf8").trim()}`,
  );

  const client = async (i: number) => {
    const paths = ["/status", "/metrics"];
    while (!stop) {
      const path = paths[i % 2] as string;
      try {
        const r = await s.compute.get(path, s.token, { signal: AbortSignal.timeout(5000) });
        await r.arrayBuffer();
        counters.requests++;
        if (r.status !== 200) error(`${path}: ${r.status}`);
      } catch (err) {
        error(`${path}: ${(err as Error).message}`);
      }
      i++;
    }
  };
  const clients = Array.from({ length: CLIENTS }, (_, i) => client(i));

  const every = (ms: number, fn: () => Promise<void>) =>
    (async () => {
      while (!stop) {
        await Bun.sleep(ms);
        if (!stop) await fn().catch((err) => error(`${fn.name}: ${(err as Error).message}`));
      }
    })();
  let n = 0;
  const reconfigure = async () => {
    n++;
    const base = s.stack.spec as Record<string, unknown> & { cluster: { settings: unknown[] } };
    const spec = {
      ...base,
      cluster: {
        ...base.cluster,
        roles: [{ name: `soak_${n % 3}` }],
        settings: [
          ...base.cluster.settings,
          { name: "work_mem", value: String(4096 + (n % 7)), vartype: "integer" },
        ],
      },
    };
    const r = await s.compute.post("/configure", s.token, {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
    });
    const body = await jsonOf(r);
    counters.reconfigures++;
    if (r.status !== 200 || body.status !== "running")
      error(`reconfigure: ${r.status} ${JSON.stringify(body)}`);
  };
  const GiB = 1024 ** 3;
  const autoscale = async () => {
    if (!agent) return;
    const h = await agent.healthCheck();
    if (h.type === "HealthCheck") counters.healthChecks++;
    else error(`health check: ${JSON.stringify(h)}`);
    // The fake host has 1 GiB and Postgres uses next to nothing: a downscale to 1 GiB is granted.
    const d = await agent.downscaleRequest({ cpu: 1, mem: GiB });
    if (d.type !== "DownscaleResult") error(`downscale: ${JSON.stringify(d)}`);
    else if (d.Ok) counters.downscalesOk++;
    else {
      counters.downscalesDenied++;
      error(`downscale denied: ${d.Status}`);
    }
    if (agent.violations.length) error(`agent: ${agent.violations.splice(0).join("; ")}`);
  };
  const loops = [every(10_000, reconfigure), every(5_000, autoscale)];

  let rawMin = Number.POSITIVE_INFINITY;
  let rawMax = 0;
  const sampler = (async () => {
    while (!stop) {
      const r = rssMiB(pid);
      rawMin = Math.min(rawMin, r);
      rawMax = Math.max(rawMax, r);
      await Bun.sleep(2_000);
    }
  })();

  const metric = (text: string, name: string) =>
    Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? Number.NaN);
  const rows: (string | number)[][] = [];
  const samples: Sample[] = [];
  let lastRequests = 0;
  let offloads = 0;
  let offloadErrors = 0;
  const t0 = performance.now();
  for (let minute = 1; minute <= MINUTES; minute++) {
    await Bun.sleep(t0 + minute * 60_000 - performance.now());
    if (s.compute.proc.exitCode !== null) throw new Error("compute_ctl exited during the soak");
    const [row] = await sql`SELECT count(*)::int AS count FROM pg_catalog.pg_stat_activity
      WHERE backend_type = 'client backend'`;
    const metrics = await (await s.compute.get("/metrics")).text();
    offloads = metric(metrics, "compute_ctl_lfc_offloads_total");
    offloadErrors = metric(metrics, "compute_ctl_lfc_offload_errors_total");
    const raw = { min: rawMin, max: Math.max(rawMax, rssMiB(pid)) };
    const probe = (await jsonOf(await s.compute.get("internal:/testing/memory"))) as Probe;
    rawMin = Number.POSITIVE_INFINITY;
    rawMax = 0;
    const sample: Sample = {
      rawMin: raw.min,
      rawMax: raw.max,
      gcRss: probe.rss / MiB,
      heapUsed: probe.heap_used / MiB,
      objects: probe.object_count,
      types: probe.object_types,
      fds: fds(pid),
      conns: Number(row?.count ?? -1),
    };
    samples.push(sample);
    const perMinute = counters.requests - lastRequests;
    lastRequests = counters.requests;
    rows.push([
      minute,
      sample.rawMin.toFixed(1),
      sample.rawMax.toFixed(1),
      sample.gcRss.toFixed(1),
      sample.heapUsed.toFixed(1),
      sample.objects,
      sample.fds,
      sample.conns,
      perMinute,
      counters.reconfigures,
      offloads,
      offloadErrors,
      counters.healthChecks,
      counters.downscalesOk,
      counters.errors,
    ]);
    console.log(
      `minute ${minute}: raw RSS ${sample.rawMin.toFixed(1)}..${sample.rawMax.toFixed(1)} MiB, after GC ${sample.gcRss.toFixed(1)} MiB (heap ${sample.heapUsed.toFixed(1)} MiB, ${sample.objects} objects), fds ${sample.fds}, pg client conns ${sample.conns}, requests ${perMinute} (total ${counters.requests}), reconfigures ${counters.reconfigures}, offloads ${offloads} (errors ${offloadErrors}), health checks ${counters.healthChecks}, downscales ${counters.downscalesOk} ok ${counters.downscalesDenied} denied, errors ${counters.errors}`,
    );
  }
  stop = true;
  await Promise.all([...clients, ...loops, sampler]);
  await sql.end({ timeout: 1 });
  agent?.close();

  table([
    [
      "min",
      "RSS min",
      "RSS max",
      "RSS GC",
      "heap GC",
      "objects",
      "fds",
      "PG conns",
      "requests",
      "reconfs",
      "offloads",
      "offl.err",
      "health",
      "downscales",
      "errors",
    ],
    ...rows.map((r) => r.map(String)),
  ]);
  const floor = samples[WARMUP_MIN - 1];
  const after = samples.slice(WARMUP_MIN);
  if (floor && after.length) {
    const max = (f: (x: Sample) => number) => Math.max(...after.map(f));
    const min = (f: (x: Sample) => number) => Math.min(...after.map(f));
    const aroundFrom = Math.max(0, WARMUP_MIN - 2);
    const around = samples.slice(aroundFrom, WARMUP_MIN + 1).map((x) => x.gcRss);
    const lastThree = samples.slice(-3).map((x) => x.gcRss);
    const rssGrowth = median(lastThree) - median(around);
    const rssPeakGrowth = max((x) => x.gcRss) - floor.gcRss;
    const heapGrowth = max((x) => x.heapUsed) - floor.heapUsed;
    const rawMaxGrowth = max((x) => x.rawMax) - floor.rawMax;
    const rawMinGrowth = max((x) => x.rawMin) - floor.rawMin;
    const fdRange =
      Math.max(
        max((x) => x.fds),
        floor.fds,
      ) -
      Math.min(
        min((x) => x.fds),
        floor.fds,
      );
    const connRange =
      Math.max(
        max((x) => x.conns),
        floor.conns,
      ) -
      Math.min(
        min((x) => x.conns),
        floor.conns,
      );
    const last = after[after.length - 1] as Sample;
    console.log(
      `RSS after a full GC: median of minutes ${aroundFrom + 1}-${aroundFrom + around.length} ${median(around).toFixed(1)} MiB, median of the last 3 minutes ${median(lastThree).toFixed(1)} MiB: growth ${rssGrowth.toFixed(1)} MiB (bound ${RSS_BOUND_MIB}; ratio ${(median(lastThree) / median(around)).toFixed(3)}); for reference minute ${WARMUP_MIN} ${floor.gcRss.toFixed(1)} MiB, highest after it +${rssPeakGrowth.toFixed(1)} MiB, last ${last.gcRss.toFixed(1)} MiB`,
    );
    console.log(
      `for reference: heap after GC ${floor.heapUsed.toFixed(1)} → highest ${(floor.heapUsed + heapGrowth).toFixed(1)} MiB, objects ${floor.objects} → ${last.objects}; raw RSS per-minute minimum +${rawMinGrowth.toFixed(1)} MiB, per-minute maximum +${rawMaxGrowth.toFixed(1)} MiB over minute ${WARMUP_MIN}`,
    );
    const grown = Object.entries(last.types)
      .map(([t, c]) => [t, c - (floor.types[t] ?? 0)] as const)
      .filter(([, d]) => d > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8);
    if (grown.length)
      console.log(
        `live object types grown since minute ${WARMUP_MIN}: ${grown.map(([t, d]) => `${t} +${d}`).join(", ")}`,
      );
    const agentOk = !AUTOSCALING || (counters.healthChecks > 0 && counters.downscalesOk > 0);
    const offloadOk = offloads > 0 && offloadErrors === 0;
    console.log(
      `fds range ${fdRange}, connections range ${connRange}, errors ${counters.errors}, offloads ${offloads} (errors ${offloadErrors}), agent ${AUTOSCALING ? `${counters.healthChecks} health checks, ${counters.downscalesOk} downscales granted` : "off"}`,
    );
    const ok =
      rssGrowth <= RSS_BOUND_MIB &&
      fdRange <= 2 &&
      connRange <= 1 &&
      counters.errors === 0 &&
      offloadOk &&
      agentOk;
    console.log(`verdict: ${ok ? "PASS" : "FAIL"}`);
    if (errors.length) console.log(`first errors:\n${errors.join("\n")}`);
    if (!ok) process.exitCode = 1;
  }
  s.compute.proc.kill("SIGTERM");
  await waitFor(() => s.compute.proc.exitCode !== null || s.compute.proc.signalCode !== null, {
    what: "compute_ctl to exit",
    timeoutMs: 20_000,
  });
} finally {
  stop = true;
  await cleanup();
}
