// Start-up: spawn-to-`running` of compute_ctl against the local stack (a Primary whose
// safekeepers agree, so the fast path; skip_pg_catalog_updates), median of 5, against a floor
// measured in the same run on the same basebackup: untar it with `tar -xzf`, write the same
// postgresql.conf, start `postgres -D` and wait until postmaster.pid says ready; the clock starts
// before the first byte is read. Goal: ratio ≤ 1.15.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { jsonOf, startCompute } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { PG_BINDIR } from "../test/support/pg.ts";
import { cleanup, makeUserDir, RUN_AS, spawnAs, waitFor } from "../test/support/proc.ts";
import { startLocalStack } from "../test/support/stack.ts";
import { median, table } from "./_util.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);

async function ready(pgdata: string): Promise<boolean> {
  const pid = await Bun.file(join(pgdata, "postmaster.pid"))
    .text()
    .catch(() => "");
  return pid.trimEnd().split("\n").at(-1)?.trim() === "ready";
}

try {
  const stack = await startLocalStack({ mode: "Primary", safekeepers: "agree" });
  const key = await ed25519Key();
  const config = { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } };

  const ours: number[] = [];
  const phases: Record<string, number[]> = { basebackup_ms: [], start_postgres_ms: [] };
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const c = await startCompute({
      config,
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata: stack.pgdata,
      waitReady: false,
    });
    const token = await key.sign({ compute_id: c.computeId });
    await waitFor(async () => (await jsonOf(c.get("/status", token))).status === "running", {
      what: "running",
      timeoutMs: 60_000,
      intervalMs: 5,
    });
    ours.push(performance.now() - t0);
    const m = await jsonOf(c.get("/metrics.json", token));
    phases.basebackup_ms?.push(m.basebackup_ms);
    phases.start_postgres_ms?.push(m.start_postgres_ms);
    await c.post("/terminate?mode=immediate", token);
    await c.exited;
  }

  // The floor: the same bytes, the same conf, the same Postgres, nothing else.
  const conf = join(await makeUserDir("bench-conf-"), "postgresql.conf");
  await copyFile(join(stack.pgdata, "postgresql.conf"), conf);
  const floor: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const dir = join(stack.dir, "floor");
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    if (RUN_AS) Bun.spawnSync(["chown", `${RUN_AS.uid}:${RUN_AS.gid}`, dir]);
    const t0 = performance.now();
    const tar = spawnAs(["tar", "-xzf", stack.template.tarGzPath, "-C", dir], { detached: false });
    if ((await tar.exited) !== 0) throw new Error("tar failed");
    const cp = spawnAs(["cp", conf, join(dir, "postgresql.conf")], { detached: false });
    await cp.exited;
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
    floor.push(performance.now() - t0);
    pg.kill("SIGINT");
    await pg.exited;
  }
  await stack.stop();

  const o = median(ours);
  const f = median(floor);
  table([
    ["measure (median of " + RUNS + ")", "compute_ctl", "floor", "ratio"],
    ["spawn → running ms", o, f, o / f],
    ["  of which basebackup_ms", median(phases.basebackup_ms ?? []), Number.NaN, Number.NaN],
    [
      "  of which start_postgres_ms",
      median(phases.start_postgres_ms ?? []),
      Number.NaN,
      Number.NaN,
    ],
  ]);
  console.log(
    `runs: compute_ctl ${ours.map((x) => x.toFixed(0)).join(", ")}; floor ${floor.map((x) => x.toFixed(0)).join(", ")}`,
  );
} finally {
  await cleanup();
}
