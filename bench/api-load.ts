// The HTTP API under load on a running Primary (the activity monitor polling every 500 ms):
// /status and /metrics.json latency over sequential keep-alive requests, /status throughput
// under wrk -t1 -c50 (alternating with the floor; the median of the rounds' ratios), and the
// worst /status latency while a /configure applies 500 new roles (the event loop must not
// stall). The floor for latency and throughput is a compiled Bun.serve answering the same
// /status body, measured in the same run. compute_ctl's stderr is read by this process (the
// test harness keeps it), so its log consumer shares the machine; bench/http writes it to a file.
import { jsonOf, startCompute } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { installNeonStub } from "../test/support/neon-stub.ts";
import { freePort } from "../test/support/ports.ts";
import { cleanup, waitFor } from "../test/support/proc.ts";
import { startLocalStack } from "../test/support/stack.ts";
import { compileFloor, median, percentile, table, wrk } from "./_util.ts";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const LOAD_SECONDS = 3;

async function sequential(url: string, headers: Record<string, string>): Promise<number[]> {
  for (let i = 0; i < 200; i++) await (await fetch(url, { headers })).arrayBuffer();
  const out: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const t0 = performance.now();
    const r = await fetch(url, { headers });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`${url} answered ${r.status}`);
    out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

try {
  const stub = installNeonStub();
  if (!stub.installed) throw new Error(`needs the neon stub extension: ${stub.reason}`);
  const stack = await startLocalStack({
    mode: "Primary",
    safekeepers: "agree",
    skipCatalogUpdates: false,
  });
  const key = await ed25519Key();
  const c = await startCompute({
    config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
    connstr: stack.connstr,
    pgbin: stack.pgbin.pgbin,
    pgdata: stack.pgdata,
  });
  const token = await key.sign({ compute_id: c.computeId });
  const auth = { authorization: `Bearer ${token}` };
  await waitFor(async () => (await jsonOf(c.get("/status", token))).status === "running", {
    what: "running",
    timeoutMs: 60_000,
  });
  const body = await (await c.get("/status", token)).text();
  const floorPort = await freePort();
  const floorBin = await compileFloor(
    "floor_server",
    `const body = ${JSON.stringify(body)};
     Bun.serve({ hostname: "::", port: ${floorPort}, fetch: () =>
       new Response(body, { headers: { "content-type": "application/json" } }) });`,
  );
  const floorProc = Bun.spawn([floorBin], { stdout: "ignore", stderr: "ignore" });
  await Bun.sleep(300);
  const floorUrl = `http://127.0.0.1:${floorPort}/status`;

  const status = await sequential(`${c.external}/status`, auth);
  const metricsJson = await sequential(`${c.external}/metrics.json`, auth);
  const floorSeq = await sequential(floorUrl, {});
  // wrk -t1 -c50, floor and compute_ctl alternating.
  await wrk(floorUrl, {}, 1, floorProc.pid);
  await wrk(`${c.external}/status`, auth, 1, c.proc.pid);
  const rpsRounds: number[] = [];
  const floorRounds: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const f = await wrk(floorUrl, {}, LOAD_SECONDS, floorProc.pid);
    const o = await wrk(`${c.external}/status`, auth, LOAD_SECONDS, c.proc.pid);
    floorRounds.push(f.rps);
    rpsRounds.push(o.rps);
    ratios.push(o.rps / f.rps);
  }
  const rps = median(rpsRounds);
  const floorRps = median(floorRounds);
  floorProc.kill("SIGKILL");

  // A reconfigure adding 500 roles, with /status polled back to back meanwhile.
  const spec = {
    ...stack.spec,
    cluster: {
      ...stack.spec.cluster,
      roles: Array.from({ length: 500 }, (_, i) => ({
        name: `load_role_${i}`,
        encrypted_password: null,
        options: null,
      })),
    },
  };
  let worst = 0;
  let polls = 0;
  let configuring = true;
  const poller = (async () => {
    while (configuring) {
      const t0 = performance.now();
      const r = await c.get("/status", token);
      await r.arrayBuffer();
      worst = Math.max(worst, performance.now() - t0);
      polls++;
    }
  })();
  const t0 = performance.now();
  const r = await c.post("/configure", token, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ spec, compute_ctl_config: { jwks: jwks(key) } }),
  });
  const configureMs = performance.now() - t0;
  configuring = false;
  await poller;
  if (r.status !== 200) throw new Error(`/configure answered ${r.status}: ${await r.text()}`);

  const p = percentile;
  table([
    ["measure", "compute_ctl", "floor", "ratio"],
    [
      `/status p50 ms (${REQUESTS} seq., monitor on)`,
      p(status, 50),
      p(floorSeq, 50),
      p(status, 50) / p(floorSeq, 50),
    ],
    ["/status p99 ms", p(status, 99), p(floorSeq, 99), p(status, 99) / p(floorSeq, 99)],
    [
      "/metrics.json p50 ms",
      p(metricsJson, 50),
      p(floorSeq, 50),
      p(metricsJson, 50) / p(floorSeq, 50),
    ],
    [
      "/metrics.json p99 ms",
      p(metricsJson, 99),
      p(floorSeq, 99),
      p(metricsJson, 99) / p(floorSeq, 99),
    ],
    [`/status req/s, wrk -t1 -c50, median of ${ROUNDS}`, rps, floorRps, median(ratios)],
    ["500-role /configure ms", configureMs, Number.NaN, Number.NaN],
    [`worst /status ms during it (${polls} polls)`, worst, Number.NaN, Number.NaN],
  ]);
  await c.post("/terminate?mode=immediate", token);
  await c.exited;
  await stack.stop();
} finally {
  await cleanup();
}
