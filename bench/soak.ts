// Soak: a compute on the local stack kept busy for SOAK_MINUTES (default 30): SOAK_CLIENTS (50)
// clients looping on /status and /metrics, a reconfigure every 10 s, the periodic LFC offload
// every 5 s (offload_lfc_interval_seconds) to a fake endpoint storage, the activity monitor, and
// with AUTOSCALING=1 a fake autoscaler-agent sending health checks and downscale requests.
// Every minute: compute_ctl's RSS and open descriptors, Postgres client connections, requests
// and errors. The floor is the compute's own figures at minute 5 (after warm-up): the verdict
// wants RSS within +10 MiB of it, descriptors and connections flat, and no error.
// Run only when named: `bun bench/run.ts soak` (not part of the default run, not in CI).
import { readdirSync, readFileSync } from "node:fs";
import postgres from "postgres";
import { FakeAgent } from "../test/fakes/autoscaler-agent.ts";
import { jsonOf } from "../test/support/compute.ts";
import { endpointStorageFixture } from "../test/support/lfc.ts";
import { cleanup, waitFor } from "../test/support/proc.ts";
import { type Started, start, waitStatus } from "../test/support/started.ts";
import { startAutoscaling } from "../test/support/vm-monitor.ts";
import { table } from "./_util.ts";

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 50);
const AUTOSCALING = !!process.env.AUTOSCALING;
const WARMUP_MIN = Math.min(5, Math.max(0, MINUTES - 1));

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

const counters = { requests: 0, errors: 0, reconfigures: 0, agentRequests: 0 };
const errors: string[] = [];
function error(what: string) {
  counters.errors++;
  if (errors.length < 20) errors.push(what);
}

let stop = false;
try {
  const es = await endpointStorageFixture();
  const specFields = { ...es.specFields, offload_lfc_interval_seconds: 5 };
  let s: Started;
  let agent: FakeAgent | null = null;
  if (AUTOSCALING) {
    s = await startAutoscaling({ spec: specFields });
  } else {
    s = await start({
      safekeepers: "agree",
      skipCatalogUpdates: false,
      template: { initSql: es.standinSql },
      spec: specFields,
    });
  }
  await waitStatus(s, "running", 60_000);
  if (AUTOSCALING) {
    const url = `ws://127.0.0.1:${(s as Awaited<ReturnType<typeof startAutoscaling>>).vmMonitorPort}/monitor`;
    agent = await FakeAgent.connect(url);
    await agent.handshake({ min: 1, max: 1 });
  }
  const pid = s.compute.proc.pid;
  const sql = postgres(s.stack.connstr, { max: 1, onnotice: () => {} });
  console.log(
    `soak: ${MINUTES} min, ${CLIENTS} clients, AUTOSCALING=${AUTOSCALING ? 1 : 0}, compute_ctl pid ${pid}`,
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
    counters.agentRequests++;
    if ((h as { type?: string }).type !== "HealthCheck")
      error(`health check: ${JSON.stringify(h)}`);
    const d = await agent.downscaleRequest({ cpu: 1, mem: GiB });
    counters.agentRequests++;
    const t = (d as { type?: string }).type;
    if (t !== "DownscaleResult") error(`downscale: ${JSON.stringify(d)}`);
    if (agent.violations.length) error(`agent: ${agent.violations.join("; ")}`);
  };
  const loops = [every(10_000, reconfigure), every(5_000, autoscale)];

  const rows: (string | number)[][] = [];
  const samples: { rss: number; fds: number; conns: number }[] = [];
  const t0 = performance.now();
  for (let minute = 1; minute <= MINUTES; minute++) {
    await Bun.sleep(t0 + minute * 60_000 - performance.now());
    if (s.compute.proc.exitCode !== null) throw new Error("compute_ctl exited during the soak");
    const [row] = await sql`SELECT count(*)::int AS count FROM pg_catalog.pg_stat_activity
      WHERE backend_type = 'client backend'`;
    const count = row?.count ?? -1;
    const offloads = (await (await s.compute.get("/metrics")).text()).match(
      /^compute_ctl_lfc_offloads_total (\d+)/m,
    )?.[1];
    const sample = { rss: rssMiB(pid), fds: fds(pid), conns: Number(count) };
    samples.push(sample);
    rows.push([
      minute,
      sample.rss.toFixed(1),
      sample.fds,
      sample.conns,
      counters.requests,
      counters.reconfigures,
      offloads ?? "?",
      counters.agentRequests,
      counters.errors,
    ]);
    console.log(
      `minute ${minute}: rss ${sample.rss.toFixed(1)} MiB, fds ${sample.fds}, pg client conns ${sample.conns}, requests ${counters.requests}, reconfigures ${counters.reconfigures}, offloads ${offloads}, agent requests ${counters.agentRequests}, errors ${counters.errors}`,
    );
  }
  stop = true;
  await Promise.all([...clients, ...loops]);
  await sql.end({ timeout: 1 });
  agent?.close();

  table([
    [
      "minute",
      "RSS MiB",
      "fds",
      "PG conns",
      "requests",
      "reconfigures",
      "offloads",
      "agent reqs",
      "errors",
    ],
    ...rows.map((r) => r.map(String)),
  ]);
  const floor = samples[WARMUP_MIN - 1] ?? samples[0];
  const last = samples[samples.length - 1];
  if (floor && last) {
    const maxAfter = samples.slice(WARMUP_MIN);
    const rssGrowth = Math.max(...maxAfter.map((x) => x.rss), last.rss) - floor.rss;
    const fdRange =
      Math.max(...maxAfter.map((x) => x.fds), last.fds) -
      Math.min(...maxAfter.map((x) => x.fds), last.fds);
    const connRange =
      Math.max(...maxAfter.map((x) => x.conns), last.conns) -
      Math.min(...maxAfter.map((x) => x.conns), last.conns);
    console.log(
      `after minute ${WARMUP_MIN}: RSS ${floor.rss.toFixed(1)} → max ${(floor.rss + rssGrowth).toFixed(1)} MiB (+${rssGrowth.toFixed(1)} MiB, ratio ${((floor.rss + rssGrowth) / floor.rss).toFixed(3)}), fds range ${fdRange}, connections range ${connRange}, errors ${counters.errors}`,
    );
    const ok = rssGrowth <= 10 && fdRange <= 2 && connRange <= 1 && counters.errors === 0;
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
