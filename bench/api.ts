// The foundation's figures: --version wall time, RSS of an idle Empty compute after 10 s, and
// /status and /metrics.json latency over 10,000 sequential keep-alive requests (as the
// reference's test_compute_ctl_api measures). Floors, measured in this run: a compiled
// hello-world for --version, and a compiled Bun.serve that returns the same /status body with
// no auth, no logging and no routing for the HTTP numbers and the idle RSS.
import { compiledBinaryInfo } from "../test/support/binary.ts";
import { emptyConfig, startCompute } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { freePort } from "../test/support/ports.ts";
import { cleanup } from "../test/support/proc.ts";
import { compileFloor, median, memoryMiB, percentile, table } from "./_util.ts";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 10_000);
const IDLE_MS = 10_000;

async function timeRuns(cmd: string[], n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const p = Bun.spawn(cmd, { stdout: "ignore", stderr: "ignore" });
    await p.exited;
    out.push(performance.now() - t0);
  }
  return out;
}

async function latencies(url: string, headers: Record<string, string>): Promise<number[]> {
  for (let i = 0; i < 200; i++) await (await fetch(url, { headers })).arrayBuffer(); // warm-up
  const out: number[] = new Array(REQUESTS);
  for (let i = 0; i < REQUESTS; i++) {
    const t0 = performance.now();
    const r = await fetch(url, { headers });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`${url} answered ${r.status}`);
    out[i] = performance.now() - t0;
  }
  return out.sort((a, b) => a - b);
}

try {
  const { path: bin, stamp } = await compiledBinaryInfo();
  console.log(
    `compute_ctl ${stamp.version}, ${(stamp.size / 2 ** 20).toFixed(1)} MiB (${stamp.target})`,
  );

  // --version against a compiled hello-world.
  const hello = await compileFloor("hello", 'console.log("hello");');
  const ours = median(await timeRuns([bin, "--version"], 10));
  const floorV = median(await timeRuns([hello], 10));

  // An Empty compute, idle for 10 s, against an idle compiled Bun.serve.
  const key = await ed25519Key();
  const token = await key.sign({ compute_id: "bench" });
  const compute = await startCompute({ config: emptyConfig(jwks(key)), computeId: "bench" });
  const body = await (await compute.get("/status", token)).text();
  const floorPort = await freePort();
  const floorBin = await compileFloor(
    "floor_server",
    `const body = ${JSON.stringify(body)};
     Bun.serve({ hostname: "::", port: ${floorPort}, fetch: () =>
       new Response(body, { headers: { "content-type": "application/json" } }) });`,
  );
  const floorProc = Bun.spawn([floorBin], { stdout: "ignore", stderr: "ignore" });
  await Bun.sleep(IDLE_MS);
  const memOurs = await memoryMiB(compute.proc.pid);
  const memFloor = await memoryMiB(floorProc.pid);

  // Latency, sequential keep-alive requests (compute_ctl logs two lines per request, as the
  // reference does; its stderr is drained by the harness).
  const auth = { authorization: `Bearer ${token}` };
  const status = await latencies(`${compute.external}/status`, auth);
  const metricsJson = await latencies(`${compute.external}/metrics.json`, auth);
  const floorLat = await latencies(`http://127.0.0.1:${floorPort}/status`, {});
  floorProc.kill("SIGKILL");

  const p = (xs: number[], q: number) => percentile(xs, q);
  table([
    ["measure", "compute_ctl", "floor", "ratio"],
    ["--version wall ms (median of 10)", ours, floorV, ours / floorV],
    ["idle RSS MiB after 10 s", memOurs.rss, memFloor.rss, memOurs.rss / memFloor.rss],
    [
      `/status p50 ms (${REQUESTS} seq.)`,
      p(status, 50),
      p(floorLat, 50),
      p(status, 50) / p(floorLat, 50),
    ],
    [`/status p99 ms`, p(status, 99), p(floorLat, 99), p(status, 99) / p(floorLat, 99)],
    [
      `/metrics.json p50 ms`,
      p(metricsJson, 50),
      p(floorLat, 50),
      p(metricsJson, 50) / p(floorLat, 50),
    ],
    [
      `/metrics.json p99 ms`,
      p(metricsJson, 99),
      p(floorLat, 99),
      p(metricsJson, 99) / p(floorLat, 99),
    ],
    [
      "RSS MiB after the requests",
      (await memoryMiB(compute.proc.pid)).rss,
      memFloor.rss,
      Number.NaN,
    ],
  ]);
} finally {
  await cleanup();
}
