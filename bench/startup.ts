// Start-up: spawn-to-`running` of compute_ctl against the local stack (a Primary whose
// safekeepers agree, so the fast path; skip_pg_catalog_updates), against a floor measured in the
// same run on the same basebackup: untar it with `tar -xzf`, write the same postgresql.conf,
// start `postgres -D` and wait until postmaster.pid says ready; the clock starts before the first
// byte is read. Runs alternate compute_ctl and the floor, first on the machine as it is
// ("quiet"), then with a CPU burner per core but one ("loaded"). Each run of compute_ctl is cut
// into phases by the timestamps of its own log lines (RUST_LOG=debug adds the `start phase`
// marks), counted from the spawn. Goal: ratio ≤ 1.15 both ways (≤ 1.05 with a 1 GiB basebackup).
//
// BENCH_RUNS (default 5) runs per variant; BENCH_LOADED=0 skips the loaded variant;
// BENCH_BASEBACKUP_MIB pads the basebackup with that many MiB of partly compressible data (the
// test templates' "mixed" padding; 1024 is the 1 GiB variant); BENCH_BINARY runs another
// compute_ctl executable than this checkout's build (to compare builds under the same load).

import { copyFile, mkdir, rm } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { compiledBinary } from "../test/support/binary.ts";
import { jsonOf, startCompute } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { PG_BINDIR } from "../test/support/pg.ts";
import { cleanup, makeUserDir, RUN_AS, spawnAs, waitFor } from "../test/support/proc.ts";
import { startLocalStack } from "../test/support/stack.ts";
import { median, table } from "./_util.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const LOADED = process.env.BENCH_LOADED !== "0";
const PAD_MIB = Number(process.env.BENCH_BASEBACKUP_MIB ?? 0);

/** Phases of compute_ctl's start, in order: the name and the log line that ends it. */
const PHASES: [string, RegExp][] = [
  ["runtime started", /start phase runtime_started at=(\S+)/],
  ["flags parsed", /start phase flags_parsed at=(\S+)/],
  ["modules loaded", /start phase modules_loaded at=(\S+)/],
  ["logging up", /compute build_tag:/],
  ["pg_config", /INFO postgres version /],
  ["config read", /start phase config_read/],
  ["status init", /Changing compute status from empty to init/],
  ["PGDATA wiped", /start phase pgdata_wiped/],
  ["HTTP servers up", /internal HTTP server listening/],
  ["conf written", /start phase conf_written/],
  ["safekeepers", /start phase lsn_selected/],
  ["bb connected", /start phase basebackup_connected/],
  ["bb first byte", /start phase basebackup_first_byte/],
  ["bb last byte", /start phase basebackup_last_byte/],
  ["bb extracted", /start phase basebackup_extracted/],
  ["PGDATA fixed up", /start phase pgdata_fixed/],
  ["postgres spawned", /INFO started postgres pid=/],
  ["postgres ready", /PostgreSQL is now running/],
  ["spec applied", /compute start finished/],
  ["running", /Changing compute status from init to running/],
];
const FLOOR_PHASES = ["tar -xzf done", "conf copied", "postgres ready"];

/** Wall-clock ms (fractional) of an ISO timestamp with microseconds. */
function wallMs(iso: string): number {
  const m = iso.match(/^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/);
  if (!m) return Number.NaN;
  const frac = (m[2] ?? "0").padEnd(6, "0").slice(0, 6);
  return Date.parse(`${m[1]}Z`) + Number(frac) / 1000;
}
// The system clock, as compute_ctl's log timestamps are (performance.timeOrigin can sit tens of
// ms off it in a process started under load). "seen running (outside)" checks the two agree.
const nowWall = () => Date.now();

function phasesOf(stderr: string, spawnedAt: number): number[] {
  const lines = stderr.split("\n");
  return PHASES.map(([, re]) => {
    for (const line of lines) {
      const m = line.match(re);
      if (!m) continue;
      const ts = m[1] ?? line.match(/(\d{4}-\d\d-\d\dT[\d:.]+Z)/)?.[1] ?? "";
      return wallMs(ts) - spawnedAt;
    }
    return Number.NaN;
  });
}

async function ready(pgdata: string): Promise<boolean> {
  const pid = await Bun.file(join(pgdata, "postmaster.pid"))
    .text()
    .catch(() => "");
  return pid.trimEnd().split("\n").at(-1)?.trim() === "ready";
}

/** One busy loop per core but one, so compute_ctl and the floor share the last core with it. */
function startBurners(): { stop(): Promise<void> } {
  const n = Math.max(1, cpus().length - 1);
  const procs = Array.from({ length: n }, () =>
    Bun.spawn(["sh", "-c", "while :; do :; done"], { stdout: "ignore", stderr: "ignore" }),
  );
  return {
    async stop() {
      for (const p of procs) p.kill("SIGKILL");
      await Promise.all(procs.map((p) => p.exited));
    },
  };
}

try {
  const stack = await startLocalStack({
    mode: "Primary",
    safekeepers: "agree",
    template: PAD_MIB > 0 ? { padBytes: PAD_MIB << 20, padContent: "mixed" } : undefined,
  });
  const key = await ed25519Key();
  const config = { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } };
  const binary = process.env.BENCH_BINARY || (await compiledBinary());
  const conf = join(await makeUserDir("bench-conf-"), "postgresql.conf");

  async function ours(): Promise<{
    total: number;
    phases: number[];
    metrics: Record<string, number>;
  }> {
    const spawnedAt = nowWall();
    const c = await startCompute({
      binary,
      config,
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata: stack.pgdata,
      waitReady: false,
      env: { RUST_LOG: "debug" },
    });
    const token = await key.sign({ compute_id: c.computeId });
    await waitFor(async () => (await jsonOf(c.get("/status", token))).status === "running", {
      what: "running",
      timeoutMs: 60_000,
      intervalMs: 5,
    });
    const total = nowWall() - spawnedAt;
    const metrics = await jsonOf(c.get("/metrics.json", token));
    await c.post("/terminate?mode=immediate", token);
    await c.exited;
    return { total, phases: phasesOf(c.stderr.text, spawnedAt), metrics };
  }

  // The floor: the same bytes, the same conf, the same Postgres, nothing else.
  async function floor(): Promise<{ total: number; phases: number[] }> {
    const dir = join(stack.dir, "floor");
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    if (RUN_AS) Bun.spawnSync(["chown", `${RUN_AS.uid}:${RUN_AS.gid}`, dir]);
    const t0 = performance.now();
    const tar = spawnAs(["tar", "-xzf", stack.template.tarGzPath, "-C", dir], { detached: false });
    if ((await tar.exited) !== 0) throw new Error("tar failed");
    const tTar = performance.now() - t0;
    const cp = spawnAs(["cp", conf, join(dir, "postgresql.conf")], { detached: false });
    await cp.exited;
    const tConf = performance.now() - t0;
    const pg = spawnAs([`${PG_BINDIR}/postgres`, "-D", dir], {
      detached: false,
      stdout: "ignore",
      stderr: "ignore",
    });
    await waitFor(() => ready(dir), {
      what: "floor postgres ready",
      timeoutMs: 60_000,
      intervalMs: 5,
    });
    const total = performance.now() - t0;
    pg.kill("SIGINT");
    await pg.exited;
    return { total, phases: [tTar, tConf, total] };
  }

  // The first start writes the postgresql.conf the floor uses.
  await ours();
  await copyFile(join(stack.pgdata, "postgresql.conf"), conf);

  const variants = LOADED ? ["quiet", "loaded"] : ["quiet"];
  for (const variant of variants) {
    const load = loadavg()[0] ?? Number.NaN;
    const burners = variant === "loaded" ? startBurners() : null;
    const o: Awaited<ReturnType<typeof ours>>[] = [];
    const f: Awaited<ReturnType<typeof floor>>[] = [];
    try {
      for (let i = 0; i < RUNS; i++) {
        // Alternate which goes first, so a burst of outside load hits both alike.
        if (i % 2 === 0) {
          o.push(await ours());
          f.push(await floor());
        } else {
          f.push(await floor());
          o.push(await ours());
        }
      }
    } finally {
      await burners?.stop();
    }
    const om = median(o.map((r) => r.total));
    const fm = median(f.map((r) => r.total));
    console.log(
      `\n-- ${variant}: ${cpus().length} cores, load average ${load.toFixed(2)} before, ${(loadavg()[0] ?? 0).toFixed(2)} after${burners ? `, ${Math.max(1, cpus().length - 1)} CPU burner(s)` : ""}`,
    );
    const goal = PAD_MIB >= 1024 ? 1.05 : 1.15;
    console.log(
      `spawn → running: ${(om / fm).toFixed(3)}× the floor; goal ≤ ${goal}× (${om / fm <= goal ? "met" : "NOT met"})`,
    );
    table([
      [`measure (median of ${RUNS})`, "compute_ctl", "floor", "ratio"],
      ["spawn → running ms", om, fm, om / fm],
      [
        "  basebackup_ms (metrics.json)",
        median(o.map((r) => r.metrics.basebackup_ms ?? 0)),
        Number.NaN,
        Number.NaN,
      ],
      [
        "  start_postgres_ms (metrics.json)",
        median(o.map((r) => r.metrics.start_postgres_ms ?? 0)),
        Number.NaN,
        Number.NaN,
      ],
      [
        "  total_startup_ms (metrics.json)",
        median(o.map((r) => r.metrics.total_startup_ms ?? 0)),
        Number.NaN,
        Number.NaN,
      ],
    ]);
    console.log(`\n${variant}: compute_ctl phases, ms from spawn (each run, then the median)`);
    table([
      ["phase ends", ...o.map((_, i) => `run ${i + 1}`), "median"],
      ...PHASES.map(([name], p) => {
        const xs = o.map((r) => r.phases[p] ?? Number.NaN);
        return [name, ...xs, median(xs.filter(Number.isFinite))];
      }),
      ["seen running (outside)", ...o.map((r) => r.total), om],
    ]);
    console.log(`\n${variant}: floor phases, ms from the start`);
    table([
      ["phase ends", ...f.map((_, i) => `run ${i + 1}`), "median"],
      ...FLOOR_PHASES.map((name, p) => {
        const xs = f.map((r) => r.phases[p] ?? Number.NaN);
        return [name, ...xs, median(xs)];
      }),
    ]);
  }
  await stack.stop();
} finally {
  await cleanup();
}
