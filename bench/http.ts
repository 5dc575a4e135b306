// /status throughput and latency of the compiled compute_ctl against a compiled bare Bun.serve
// answering the same body (no routing, no auth, no log): the floor. Throughput is wrk (native,
// `-t1 -c50`), alternating floor / compute_ctl rounds in one run so load on the machine hits
// both alike; the ratio is the median over the rounds. Latency is 10,000 sequential keep-alive
// requests (p50/p99). compute_ctl is an Empty compute with a JWKS, called with a valid token, its
// stderr (two access log lines per request) going to a file, as a supervisor would take it.
//
// Goals: req/s ratio >= 0.6 (0.65 on the development machine), /status p99 <= 1 ms.
// BENCH_ROUNDS (default 5) and BENCH_SECONDS (default 3) size the wrk rounds; BENCH_BINARY
// measures another build, BENCH_BASELINE adds a second build to the same alternation.
import { openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { compiledBinary } from "../test/support/binary.ts";
import { emptyConfig } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { freePort } from "../test/support/ports.ts";
import { cleanup, makeUserDir, spawnAs, waitFor } from "../test/support/proc.ts";
import { compileFloor, median, percentile, table, wrk } from "./_util.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 10_000);

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

interface Server {
  name: string;
  url: string;
  headers: Record<string, string>;
  pid: number;
  proc: { kill(signal?: number | NodeJS.Signals): void };
  logPath?: string;
  lat: number[];
  rps: number[];
  cpuUs: number[];
}

async function startComputeCtl(
  name: string,
  bin: string,
  configPath: string,
  dir: string,
  auth: Record<string, string>,
): Promise<Server> {
  const [ext, int] = [await freePort(), await freePort()];
  const logPath = join(dir, `${name}.log`);
  const proc = spawnAs(
    [
      bin,
      ...["-D", join(dir, `pgdata-${name}`), "-C", "postgresql://cloud_admin@127.0.0.1:1/postgres"],
      ...["-b", "/usr/lib/postgresql/15/bin/postgres", "--compute-id", "bench"],
      ...["--external-http-port", String(ext), "--internal-http-port", String(int)],
      ...["-c", configPath],
    ],
    { env: { OTEL_SDK_DISABLED: "true" }, stdout: "ignore", stderr: openSync(logPath, "a") },
  );
  const url = `http://127.0.0.1:${ext}/status`;
  await waitFor(async () => (await fetch(url, { headers: auth })).status === 200, {
    what: `${name}'s external server`,
    timeoutMs: 15_000,
  });
  return { name, url, headers: auth, pid: proc.pid, proc, logPath, lat: [], rps: [], cpuUs: [] };
}

try {
  const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();
  const key = await ed25519Key();
  const token = await key.sign({ compute_id: "bench" });
  const auth = { authorization: `Bearer ${token}` };
  const dir = await makeUserDir("bench-http-");
  const configPath = join(dir, "config.json");
  await Bun.write(configPath, JSON.stringify(emptyConfig(jwks(key))));

  // BENCH_BINARY: another build than this checkout's; BENCH_BASELINE: a second build measured in
  // the same alternation (before/after figures from one run).
  const servers: Server[] = [
    await startComputeCtl(
      "compute_ctl",
      process.env.BENCH_BINARY ?? (await compiledBinary()),
      configPath,
      dir,
      auth,
    ),
  ];
  if (process.env.BENCH_BASELINE) {
    servers.push(
      await startComputeCtl("baseline", process.env.BENCH_BASELINE, configPath, dir, auth),
    );
  }
  const body = await (await fetch(servers[0]!.url, { headers: auth })).text();

  const floorPort = await freePort();
  const floorBin = await compileFloor(
    "floor_server",
    `const body = ${JSON.stringify(body)};
     Bun.serve({ hostname: "::", port: ${floorPort}, fetch: () =>
       new Response(body, { headers: { "content-type": "application/json" } }) });`,
  );
  const floorProc = Bun.spawn([floorBin], { stdout: "ignore", stderr: "ignore" });
  const floor: Server = {
    name: "floor",
    url: `http://127.0.0.1:${floorPort}/status`,
    headers: {},
    pid: floorProc.pid,
    proc: floorProc,
    lat: [],
    rps: [],
    cpuUs: [],
  };
  await waitFor(async () => (await fetch(floor.url)).status === 200, { what: "the floor" });
  const all = [floor, ...servers];

  // Latency first, while the log files are small.
  for (const s of all) s.lat = await latencies(s.url, s.headers);

  // Warm all (JIT), then alternate.
  for (const s of all) await wrk(s.url, s.headers, 1, s.pid);
  for (let i = 0; i < ROUNDS; i++) {
    const parts: string[] = [];
    for (const s of all) {
      const r = await wrk(s.url, s.headers, SECONDS, s.pid);
      s.rps.push(r.rps);
      s.cpuUs.push(r.cpuUs);
      parts.push(`${s.name} ${r.rps.toFixed(0)} req/s (${r.cpuUs.toFixed(1)} µs CPU/req)`);
    }
    console.log(`round ${i + 1}: ${parts.join(", ")}`);
  }
  for (const s of all) s.proc.kill("SIGKILL");

  const p = percentile;
  const rows: (string | number)[][] = [["measure", "server", "value", "floor", "ratio", "goal"]];
  for (const s of servers) {
    const ratios = s.rps.map((r, i) => r / (floor.rps[i] ?? Number.NaN));
    rows.push(
      [
        `/status req/s, wrk -t1 -c50, median of ${ROUNDS}`,
        s.name,
        median(s.rps),
        median(floor.rps),
        median(ratios),
        ">= 0.6",
      ],
      [
        "server CPU µs per /status, median",
        s.name,
        median(s.cpuUs),
        median(floor.cpuUs),
        median(s.cpuUs) / median(floor.cpuUs),
        "",
      ],
      [
        `/status p50 ms (${REQUESTS} seq.)`,
        s.name,
        p(s.lat, 50),
        p(floor.lat, 50),
        p(s.lat, 50) / p(floor.lat, 50),
        "",
      ],
      [
        "/status p99 ms",
        s.name,
        p(s.lat, 99),
        p(floor.lat, 99),
        p(s.lat, 99) / p(floor.lat, 99),
        "<= 1 ms",
      ],
    );
    console.log(`${s.name} ratios per round: ${ratios.map((r) => r.toFixed(3)).join(" ")}`);
    const lines = readFileSync(s.logPath as string, "utf8").split("\n").length - 1;
    console.log(`${s.name} wrote ${lines} log lines`);
  }
  table(rows);
  console.log(
    `loadavg before: ${loadBefore}; after: ${readFileSync("/proc/loadavg", "utf8").trim()}`,
  );
} finally {
  await cleanup();
}
