// /status throughput and latency of the compiled compute_ctl against a compiled bare Bun.serve
// answering the same body (no routing, no auth, no log): the floor. Throughput is wrk (native,
// `-t1 -c50`), alternating floor / compute_ctl rounds in one run so load on the machine hits
// both alike; the ratio is the median over the rounds. Latency is 10,000 sequential keep-alive
// requests (p50/p99). compute_ctl is an Empty compute with a JWKS, called with a valid token, its
// stderr (two access log lines per request) going to a file, as a supervisor would take it.
//
// Goals: req/s ratio >= 0.6 (0.65 on the development machine), /status p99 <= 1 ms.
// BENCH_ROUNDS (default 5) and BENCH_SECONDS (default 3) size the wrk rounds.
import { openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { compiledBinary } from "../test/support/binary.ts";
import { emptyConfig } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { freePort } from "../test/support/ports.ts";
import { cleanup, makeUserDir, spawnAs, waitFor } from "../test/support/proc.ts";
import { compileFloor, median, percentile, table } from "./_util.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 10_000);

/** utime + stime of `pid`, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** wrk's req/s, and the server's CPU time per request (µs), which load on the machine bends less. */
async function wrk(url: string, headers: Record<string, string>, seconds: number, pid: number) {
  const cpu0 = cpuSeconds(pid);
  const args = ["wrk", "-t1", "-c50", `-d${seconds}s`, "--latency"];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  const p = Bun.spawn([...args, url], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  if ((await p.exited) !== 0) throw new Error(`wrk failed: ${await new Response(p.stderr).text()}`);
  const cpu = cpuSeconds(pid) - cpu0;
  const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const requests = Number(out.match(/(\d+) requests in/)?.[1]);
  if (/Non-2xx/.test(out) || /Socket errors/.test(out) || !Number.isFinite(rps)) {
    throw new Error(`wrk reported errors against ${url}:\n${out}`);
  }
  return { rps, cpuUs: (cpu / requests) * 1e6 };
}

async function latencies(url: string, headers: Record<string, string>): Promise<number[]> {
  for (let i = 0; i < 500; i++) await (await fetch(url, { headers })).arrayBuffer();
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
  const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();
  const bin = await compiledBinary();
  const key = await ed25519Key();
  const token = await key.sign({ compute_id: "bench" });
  const auth = { authorization: `Bearer ${token}` };

  const dir = await makeUserDir("bench-http-");
  const configPath = join(dir, "config.json");
  await Bun.write(configPath, JSON.stringify(emptyConfig(jwks(key))));
  const [ext, int] = [await freePort(), await freePort()];
  const logPath = join(dir, "compute_ctl.log");
  const logFd = openSync(logPath, "a");
  const compute = spawnAs(
    [
      bin,
      ...["-D", join(dir, "pgdata"), "-C", "postgresql://cloud_admin@127.0.0.1:1/postgres"],
      ...["-b", "/usr/lib/postgresql/15/bin/postgres", "--compute-id", "bench"],
      ...["--external-http-port", String(ext), "--internal-http-port", String(int)],
      ...["-c", configPath],
    ],
    { env: { OTEL_SDK_DISABLED: "true" }, stdout: "ignore", stderr: logFd },
  );
  const url = `http://127.0.0.1:${ext}/status`;
  await waitFor(async () => (await fetch(url, { headers: auth })).status === 200, {
    what: "compute_ctl's external server",
    timeoutMs: 15_000,
  });
  const body = await (await fetch(url, { headers: auth })).text();

  const floorPort = await freePort();
  const floorBin = await compileFloor(
    "floor_server",
    `const body = ${JSON.stringify(body)};
     Bun.serve({ hostname: "::", port: ${floorPort}, fetch: () =>
       new Response(body, { headers: { "content-type": "application/json" } }) });`,
  );
  const floor = Bun.spawn([floorBin], { stdout: "ignore", stderr: "ignore" });
  const floorUrl = `http://127.0.0.1:${floorPort}/status`;
  await waitFor(async () => (await fetch(floorUrl)).status === 200, { what: "the floor" });

  // Latency first, while the log file is small.
  const lat = await latencies(url, auth);
  const floorLat = await latencies(floorUrl, {});

  // Warm both (JIT), then alternate.
  await wrk(floorUrl, {}, 1, floor.pid);
  await wrk(url, auth, 1, compute.pid);
  const ours: number[] = [];
  const floors: number[] = [];
  const ratios: number[] = [];
  const cpuOurs: number[] = [];
  const cpuFloor: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const f = await wrk(floorUrl, {}, SECONDS, floor.pid);
    const o = await wrk(url, auth, SECONDS, compute.pid);
    floors.push(f.rps);
    ours.push(o.rps);
    ratios.push(o.rps / f.rps);
    cpuFloor.push(f.cpuUs);
    cpuOurs.push(o.cpuUs);
    console.log(
      `round ${i + 1}: floor ${f.rps.toFixed(0)} req/s (${f.cpuUs.toFixed(1)} µs CPU/req), ` +
        `compute_ctl ${o.rps.toFixed(0)} req/s (${o.cpuUs.toFixed(1)} µs CPU/req)`,
    );
  }
  floor.kill("SIGKILL");
  compute.kill("SIGKILL");
  await compute.exited;
  const logLines = readFileSync(logPath, "utf8").split("\n").length;

  const p = percentile;
  table([
    ["measure", "compute_ctl", "floor", "ratio", "goal"],
    [
      `/status req/s, wrk -t1 -c50, median of ${ROUNDS}`,
      median(ours),
      median(floors),
      median(ratios),
      ">= 0.6",
    ],
    [
      `/status p50 ms (${REQUESTS} seq.)`,
      p(lat, 50),
      p(floorLat, 50),
      p(lat, 50) / p(floorLat, 50),
    ],
    ["/status p99 ms", p(lat, 99), p(floorLat, 99), p(lat, 99) / p(floorLat, 99), "<= 1 ms"],
  ]);
  console.log(`ratios per round: ${ratios.map((r) => r.toFixed(3)).join(" ")}`);
  console.log(`compute_ctl wrote ${logLines} log lines`);
  console.log(
    `loadavg before: ${loadBefore}; after: ${readFileSync("/proc/loadavg", "utf8").trim()}`,
  );
} finally {
  await cleanup();
}
