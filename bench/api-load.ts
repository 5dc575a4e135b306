// The HTTP API under load on a running Primary (the activity monitor polling every 500 ms):
// /status and /metrics.json latency over sequential keep-alive requests, /status throughput
// with 50 concurrent keep-alive clients, and the worst /status latency while a /configure
// applies 500 new roles (the event loop must not stall). The floor for latency and throughput
// is a compiled Bun.serve answering the same /status body, measured in the same run.
import { jsonOf, startCompute } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { installNeonStub } from "../test/support/neon-stub.ts";
import { freePort } from "../test/support/ports.ts";
import { cleanup, waitFor } from "../test/support/proc.ts";
import { startLocalStack } from "../test/support/stack.ts";
import { compileFloor, percentile, table } from "./_util.ts";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 10_000);
const CLIENTS = 50;
const LOAD_MS = 5000;

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

async function throughput(url: string, headers: Record<string, string>): Promise<number> {
  let done = 0;
  const end = performance.now() + LOAD_MS;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (performance.now() < end) {
        const r = await fetch(url, { headers });
        await r.arrayBuffer();
        if (r.status === 200) done++;
      }
    }),
  );
  return done / (LOAD_MS / 1000);
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
  const rps = await throughput(`${c.external}/status`, auth);
  const floorRps = await throughput(floorUrl, {});
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
    [`/status req/s, ${CLIENTS} keep-alive clients`, rps, floorRps, rps / floorRps],
    ["500-role /configure ms", configureMs, Number.NaN, Number.NaN],
    [`worst /status ms during it (${polls} polls)`, worst, Number.NaN, Number.NaN],
  ]);
  await c.post("/terminate?mode=immediate", token);
  await c.exited;
  await stack.stop();
} finally {
  await cleanup();
}
