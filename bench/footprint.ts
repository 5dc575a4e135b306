// Footprint: what compute_ctl costs when it does little.
//   - `--version` wall time of the compiled binary against a compiled hello-world (goal ≤ 1.5×),
//     timed by hyperfine (-N, no shell) in rounds that alternate which command goes first. The
//     goal is on the means; the medians and the CPU time are printed beside them because on a
//     busy machine the means mostly measure the wait for a core.
//   - VmRSS of an Empty compute (no spec) after 10 s idle, and of a running compute (the local
//     stack: fake pageserver and safekeepers, the real Postgres 15) after 60 s idle, against a
//     compiled Bun.serve hello-world idle as long (the runtime's own floor). Goal ≤ 55 MiB each.
// The running compute's VmHWM (high-water mark) is printed beside it.
//
// BENCH_VERSION_ROUNDS (default 6) rounds of BENCH_VERSION_RUNS (default 30) runs of each command;
// BENCH_RUNNING_IDLE_S (default 60) and BENCH_EMPTY_IDLE_S (default 10) the idle times;
// BENCH_BINARY another compute_ctl executable to measure instead of this checkout's build.

import { loadavg } from "node:os";
import { compiledBinaryInfo } from "../test/support/binary.ts";
import { emptyConfig, startCompute } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { freePort } from "../test/support/ports.ts";
import { cleanup, makeUserDir, waitFor } from "../test/support/proc.ts";
import { start, terminate, waitStatus } from "../test/support/started.ts";
import { compileFloor, median, memoryMiB, table } from "./_util.ts";

const ROUNDS = Number(process.env.BENCH_VERSION_ROUNDS ?? 6);
const RUNS = Number(process.env.BENCH_VERSION_RUNS ?? 30);
const EMPTY_IDLE_MS = Number(process.env.BENCH_EMPTY_IDLE_S ?? 10) * 1000;
const RUNNING_IDLE_MS = Number(process.env.BENCH_RUNNING_IDLE_S ?? 60) * 1000;
const GOAL_VERSION_RATIO = 1.5;
const GOAL_RSS_MIB = 55;

interface Timing {
  mean: number;
  sd: number;
  median: number;
  /** Mean CPU time (user + system), which other load on the machine disturbs much less. */
  cpu: number;
  n: number;
}

/** All run times (ms) of each command, over rounds that alternate the order. */
async function hyperfine(a: string[], b: string[]): Promise<[Timing, Timing]> {
  const times: [number[], number[]] = [[], []];
  const cpu: [number[], number[]] = [[], []];
  const dir = await makeUserDir("bench-footprint-");
  const quote = (cmd: string[]) => cmd.map((s) => `'${s.replaceAll("'", "'\\''")}'`).join(" ");
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    const cmds = order.map((i) => quote(i === 0 ? a : b));
    const json = `${dir}/round-${round}.json`;
    const p = Bun.spawn(
      [
        "hyperfine",
        "-N",
        "--style",
        "none",
        "-w",
        "3",
        "-r",
        String(RUNS),
        "--export-json",
        json,
      ].concat(cmds),
      { stdout: "ignore", stderr: "pipe" },
    );
    if ((await p.exited) !== 0) {
      throw new Error(`hyperfine failed: ${await new Response(p.stderr).text()}`);
    }
    const out = (await Bun.file(json).json()) as {
      results: { times: number[]; user: number; system: number }[];
    };
    order.forEach((i, k) => {
      const r = out.results[k];
      times[i]!.push(...(r?.times ?? []).map((s) => s * 1000));
      cpu[i]!.push(((r?.user ?? Number.NaN) + (r?.system ?? Number.NaN)) * 1000);
    });
  }
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const stat = (xs: number[], cpus: number[]): Timing => {
    const m = mean(xs);
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / Math.max(1, xs.length - 1));
    return { mean: m, sd, median: median(xs), cpu: mean(cpus), n: xs.length };
  };
  return [stat(times[0], cpu[0]), stat(times[1], cpu[1])];
}

const loads = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

try {
  // BENCH_BINARY measures another build (e.g. an older one, for a before/after).
  const bin = process.env.BENCH_BINARY ?? (await compiledBinaryInfo()).path;
  const size = Bun.file(bin).size / 2 ** 20;
  const version = Bun.spawnSync([bin, "--version"]).stdout.toString().trim();
  console.log(`${version}, ${size.toFixed(1)} MiB; load average ${loads()}`);

  // --version against a compiled hello-world.
  const hello = await compileFloor("hello", 'console.log("hello");');
  const [ours, floor] = await hyperfine([bin, "--version"], [hello]);
  const versionRatio = ours.mean / floor.mean;

  // Both computes and both floors idle side by side: the Empty one is read after 10 s, the
  // running one after 60 s, each against a Bun.serve floor started with it.
  const serveFloor = await compileFloor(
    "floor_server",
    `Bun.serve({ hostname: "127.0.0.1", port: Number(process.argv[2]), fetch: () =>
       new Response('{"status":"running"}', { headers: { "content-type": "application/json" } }) });`,
  );
  const startFloor = async () => {
    const port = await freePort();
    const p = Bun.spawn([serveFloor, String(port)], { stdout: "ignore", stderr: "ignore" });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/`).catch(() => null))?.ok, {
      what: "the Bun.serve floor",
      timeoutMs: 15_000,
    });
    return p;
  };

  const key = await ed25519Key();
  const running = await start({
    mode: "Primary",
    safekeepers: "agree",
    binary: bin,
    computeId: "bench-running",
    fast: false,
  });
  await waitStatus(running, "running", 60_000);
  const runningFloor = await startFloor();
  const runningSince = performance.now();

  const empty = await startCompute({
    binary: bin,
    config: emptyConfig(jwks(key)),
    computeId: "bench-empty",
  });
  const emptyFloor = await startFloor();
  await Bun.sleep(EMPTY_IDLE_MS);
  const memEmpty = await memoryMiB(empty.proc.pid);
  const memEmptyFloor = await memoryMiB(emptyFloor.pid);
  emptyFloor.kill("SIGKILL");
  empty.proc.kill("SIGKILL");

  await Bun.sleep(Math.max(0, RUNNING_IDLE_MS - (performance.now() - runningSince)));
  const memRunning = await memoryMiB(running.compute.proc.pid);
  const memRunningFloor = await memoryMiB(runningFloor.pid);
  runningFloor.kill("SIGKILL");
  await terminate(running, "immediate");
  await running.compute.exited;
  await running.stack.stop();

  const ms = (t: Timing) => `${t.mean.toFixed(2)} ± ${t.sd.toFixed(2)}`;
  const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
  console.log(`load average after: ${loads()}`);
  table([
    ["measure", "compute_ctl", "floor", "ratio", "goal"],
    [
      `--version ms, mean ± σ (${ours.n} runs)`,
      ms(ours),
      ms(floor),
      versionRatio,
      `≤ ${GOAL_VERSION_RATIO}× (${verdict(versionRatio <= GOAL_VERSION_RATIO)})`,
    ],
    ["--version ms, median", ours.median, floor.median, ours.median / floor.median, ""],
    ["--version CPU ms (user + sys), mean", ours.cpu, floor.cpu, ours.cpu / floor.cpu, ""],
    [
      `Empty compute VmRSS MiB after ${EMPTY_IDLE_MS / 1000} s`,
      memEmpty.rss,
      memEmptyFloor.rss,
      memEmpty.rss / memEmptyFloor.rss,
      `≤ ${GOAL_RSS_MIB} MiB (${verdict(memEmpty.rss <= GOAL_RSS_MIB)})`,
    ],
    [
      `running compute VmRSS MiB after ${RUNNING_IDLE_MS / 1000} s`,
      memRunning.rss,
      memRunningFloor.rss,
      memRunning.rss / memRunningFloor.rss,
      `≤ ${GOAL_RSS_MIB} MiB (${verdict(memRunning.rss <= GOAL_RSS_MIB)})`,
    ],
    ["running compute VmHWM MiB", memRunning.hwm, memRunningFloor.hwm, "", ""],
  ]);
} finally {
  await cleanup();
}
