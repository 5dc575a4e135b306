// Tracing's cost at start-up: spawn-to-`running` of the compiled compute_ctl against the local
// stack with tracing on (exporting to a fake collector) and off (OTEL_SDK_DISABLED=true, the
// floor), runs interleaved, median of 7; and `--version` against a compiled hello-world floor.
// BENCH_BASE_BINARY=<path> adds a third start-up column: another build (e.g. one without
// tracing) with tracing off, to show the facade costs nothing when off.
import { startFakeCollector } from "../test/fakes/otlp-collector.ts";
import { compiledBinary } from "../test/support/binary.ts";
import { jsonOf, startCompute } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { cleanup, waitFor } from "../test/support/proc.ts";
import { startLocalStack } from "../test/support/stack.ts";
import { compileFloor, median, table } from "./_util.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const BASE = process.env.BENCH_BASE_BINARY;

async function timeVersion(bin: string, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const p = Bun.spawn([bin, "--version"], { stdout: "ignore", stderr: "ignore" });
    await p.exited;
    times.push(performance.now() - t0);
  }
  return median(times);
}

try {
  const bin = await compiledBinary();
  const collector = await startFakeCollector();
  const stack = await startLocalStack({ mode: "Primary", safekeepers: "agree" });
  const key = await ed25519Key();
  const config = { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } };
  const variants: Record<string, { binary: string; env: Record<string, string> }> = {
    off: { binary: bin, env: { OTEL_SDK_DISABLED: "true" } },
    on: {
      binary: bin,
      env: { OTEL_SDK_DISABLED: "false", OTEL_EXPORTER_OTLP_ENDPOINT: collector.url },
    },
  };
  if (BASE) variants.base = { binary: BASE, env: { OTEL_SDK_DISABLED: "true" } };
  const times: Record<string, number[]> = Object.fromEntries(
    Object.keys(variants).map((k) => [k, []]),
  );
  for (let i = 0; i < RUNS; i++) {
    for (const [name, v] of Object.entries(variants)) {
      const t0 = performance.now();
      const c = await startCompute({
        config,
        connstr: stack.connstr,
        pgbin: stack.pgbin.pgbin,
        pgdata: stack.pgdata,
        waitReady: false,
        binary: v.binary,
        env: v.env,
      });
      const token = await key.sign({ compute_id: c.computeId });
      await waitFor(async () => (await jsonOf(c.get("/status", token))).status === "running", {
        what: "running",
        timeoutMs: 60_000,
        intervalMs: 5,
      });
      times[name]?.push(performance.now() - t0);
      await c.post("/terminate?mode=immediate", token);
      await c.exited;
    }
  }
  await stack.stop();
  await collector.stop();
  if (collector.spans.filter((s) => s.name === "start_compute").length !== RUNS) {
    throw new Error("the traced runs did not all export a start_compute span");
  }

  const floorBin = await compileFloor("hello", 'console.log("hello");');
  const versionRuns = RUNS * 3;
  const ours = await timeVersion(bin, versionRuns);
  const floor = await timeVersion(floorBin, versionRuns);
  const base = BASE ? await timeVersion(BASE, versionRuns) : Number.NaN;

  const off = median(times.off ?? []);
  const on = median(times.on ?? []);
  const rows: (string | number)[][] = [
    ["measure (median)", "compute_ctl", "floor", "ratio"],
    ["spawn → running ms, tracing on vs off", on, off, on / off],
  ];
  if (BASE) {
    const b = median(times.base ?? []);
    rows.push(["spawn → running ms, tracing off vs BENCH_BASE_BINARY", off, b, off / b]);
    rows.push(["--version ms vs BENCH_BASE_BINARY", ours, base, ours / base]);
  }
  rows.push(["--version ms vs compiled hello-world", ours, floor, ours / floor]);
  table(rows);
  for (const [name, xs] of Object.entries(times)) {
    console.log(`${name}: ${xs.map((x) => x.toFixed(0)).join(", ")}`);
  }
} finally {
  await cleanup();
}
