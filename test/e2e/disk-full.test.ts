// Disk full: PGDATA on a small tmpfs (mounted here, as root) and a basebackup bigger than it. The
// compute must end in `failed` with an error naming the disk (ENOSPC, "no space left on device",
// the path), never reach `running`, exit 1 after the failed-exit delay, and leave nothing running.
// The tmpfs is unmounted afterwards, whatever happened. Skipped, with the reason printed, when not
// root or when mounting is not permitted (an unprivileged container).
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { jsonOf, startCompute } from "../support/compute.ts";
import { ed25519Key, jwks } from "../support/jwt.ts";
import { processesUsing } from "../support/leftovers.ts";
import { cleanup, makeUserDir, onExit, RUN_AS, waitFor } from "../support/proc.ts";
import { startLocalStack } from "../support/stack.ts";
import { FAST } from "../support/started.ts";

setDefaultTimeout(120_000);

const mounted = new Set<string>();

function umount(dir: string): void {
  if (!mounted.has(dir)) return;
  // Lazy: a process still holding a file there must not keep the mount (or the test) alive.
  const r = Bun.spawnSync(["umount", "-l", dir], { stderr: "pipe" });
  if (r.exitCode === 0) mounted.delete(dir);
  else console.error(`disk-full: umount ${dir}: ${r.stderr.toString().trim()}`);
}

onExit(() => {
  for (const d of [...mounted]) umount(d);
});
afterAll(async () => {
  for (const d of [...mounted]) umount(d);
  await cleanup();
});

/** Mounts a tmpfs of `mib` MiB owned by the user the computes run as, or says why it cannot. */
async function smallDisk(mib: number): Promise<{ dir: string } | { skip: string }> {
  if (process.getuid?.() !== 0) return { skip: "not root: cannot mount a tmpfs" };
  const dir = join(await makeUserDir("diskfull-"), "disk");
  mkdirSync(dir);
  const owner = RUN_AS ? `,uid=${RUN_AS.uid},gid=${RUN_AS.gid}` : "";
  const r = Bun.spawnSync(
    ["mount", "-t", "tmpfs", "-o", `size=${mib}m,mode=0755${owner}`, "tmpfs", dir],
    { stderr: "pipe" },
  );
  if (r.exitCode !== 0) {
    return {
      skip: `mount -t tmpfs refused: ${r.stderr.toString().trim() || `exit ${r.exitCode}`}`,
    };
  }
  mounted.add(dir);
  return { dir };
}

const FAILED_EXIT_DELAY_MS = 3_000;

describe("disk full", () => {
  test("a basebackup bigger than PGDATA's file system: failed naming the disk, exit 1, nothing left", async () => {
    // The basebackup unpacks to ~38 MiB (a 16 MiB WAL segment and the initdb catalog).
    const disk = await smallDisk(24);
    if ("skip" in disk) {
      console.log(`SKIP disk-full: ${disk.skip}`);
      return;
    }
    const stack = await startLocalStack({ safekeepers: "agree" });
    const pgdata = join(disk.dir, "pgdata");
    const key = await ed25519Key();
    const compute = await startCompute({
      config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata,
      env: {
        ...FAST,
        COMPUTE_CTL_TESTING_FAILED_EXIT_DELAY_MS: String(FAILED_EXIT_DELAY_MS),
        // The reference's 10 retries (~57 s of backoff): a full disk must not be retried.
        NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: undefined,
      },
    });
    const startedAt = performance.now();
    const token = await key.sign({ compute_id: compute.computeId });
    let exited = false;
    void compute.exited.then(() => {
      exited = true;
    });
    const seen = new Set<string>();
    const failed = await waitFor(
      async () => {
        if (exited) throw new Error(`exited before failed was seen:\n${compute.stderr.text}`);
        const st = await jsonOf(compute.get("/status", token));
        seen.add(st.status);
        return st.status === "failed" ? st : undefined;
      },
      { what: "status failed", timeoutMs: 60_000, intervalMs: 20 },
    );
    expect([...seen].filter((x) => x !== "init" && x !== "failed")).toEqual([]);
    expect(performance.now() - startedAt).toBeLessThan(20_000);
    expect(compute.stderr.text).not.toContain("Failed to get basebackup");
    // The error says what happened and where.
    const error = String(failed.error);
    expect(error).toContain("ENOSPC");
    expect(error.toLowerCase()).toContain("no space left on device");
    expect(error).toContain(pgdata);
    expect(error).not.toMatch(/^\s+at /m);
    // The same cause is logged, once, as the reason the start failed.
    const logged = compute.stderr.text.split("\n").filter((l) => / ERROR /.test(l));
    expect(logged.some((l) => l.includes("ENOSPC") && l.includes(pgdata))).toBe(true);
    // Never running; exits 1 after the failed-exit delay; Postgres never started.
    expect(await compute.exited).toBe(1);
    expect(compute.stderr.text).toContain("could not start the compute node");
    expect(compute.stderr.text).not.toContain("started postgres");
    expect(processesUsing(pgdata)).toEqual([]);
    expect(processesUsing(disk.dir)).toEqual([]);
    await stack.stop();
  });

  test("the disk fills up after the basebackup, before Postgres starts: failed naming the disk, exit 1", async () => {
    const disk = await smallDisk(48);
    if ("skip" in disk) {
      console.log(`SKIP disk-full: ${disk.skip}`);
      return;
    }
    const stack = await startLocalStack({ safekeepers: "agree", startDelayMs: 4_000 });
    const pgdata = join(disk.dir, "pgdata");
    const key = await ed25519Key();
    const compute = await startCompute({
      config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata,
      env: { ...FAST, COMPUTE_CTL_TESTING_FAILED_EXIT_DELAY_MS: String(FAILED_EXIT_DELAY_MS) },
    });
    const token = await key.sign({ compute_id: compute.computeId });
    // Once compute_ctl runs Postgres (which the wrapper holds back), PGDATA is complete: fill
    // the disk then.
    await waitFor(() => postgresWaiting(stack.pgbin.pgbin, pgdata), {
      what: "compute_ctl to run Postgres",
      timeoutMs: 30_000,
      intervalMs: 10,
    });
    fill(join(disk.dir, "filler"));
    const seen = new Set<string>();
    const failed = await waitFor(
      async () => {
        const st = await jsonOf(compute.get("/status", token));
        seen.add(st.status);
        return st.status === "failed" ? st : undefined;
      },
      { what: "status failed", timeoutMs: 60_000, intervalMs: 20 },
    );
    expect([...seen].filter((x) => x !== "init" && x !== "failed")).toEqual([]);
    const error = String(failed.error);
    expect(error).toContain("No space left on device");
    expect(error).toContain(pgdata);
    expect(await compute.exited).toBe(1);
    expect(processesUsing(pgdata)).toEqual([]);
    await stack.stop();
  });

  test("a reconfigure on a full disk: 500 naming postgresql.conf, the old file intact, Postgres up", async () => {
    const disk = await smallDisk(48);
    if ("skip" in disk) {
      console.log(`SKIP disk-full: ${disk.skip}`);
      return;
    }
    const stack = await startLocalStack({ safekeepers: "agree" });
    const pgdata = join(disk.dir, "pgdata");
    const key = await ed25519Key();
    const compute = await startCompute({
      config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata,
      env: { ...FAST },
    });
    const token = await key.sign({ compute_id: compute.computeId });
    await waitFor(async () => (await jsonOf(compute.get("/status", token))).status === "running", {
      what: "status running",
      timeoutMs: 60_000,
    });
    const confPath = join(pgdata, "postgresql.conf");
    const before = readFileSync(confPath);
    // Connected before the disk is full: a new backend on a full disk cannot write its relcache
    // init file and is refused.
    const sql = postgres(stack.connstr, { max: 1, onnotice: () => {}, connect_timeout: 5 });
    expect((await sql`SELECT 1 AS one`)[0]?.one).toBe(1);
    const filler = join(disk.dir, "filler");
    fill(filler);
    const spec = structuredClone(stack.spec) as { cluster: { settings: unknown[] } };
    // Long enough that the new file needs a page the full disk does not have.
    spec.cluster.settings.push({
      name: "application_name",
      value: "x".repeat(8192),
      vartype: "string",
    });
    const r = await compute.post("/configure", token, {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
    });
    expect(r.status).toBe(500);
    const error = String((await jsonOf(r)).error);
    expect(error).toContain("ENOSPC: no space left on device");
    expect(error).toContain(confPath);
    // Not cut short or emptied: the running Postgres's file, byte for byte, and no temporary left.
    expect(readFileSync(confPath).equals(before)).toBe(true);
    expect(readdirSync(pgdata).filter((f) => f.startsWith("postgresql.conf."))).toEqual([]);
    try {
      expect((await sql`SELECT 2 AS two`)[0]?.two).toBe(2);
    } finally {
      await sql.end({ timeout: 1 });
    }
    rmSync(filler);
    compute.proc.kill("SIGTERM");
    expect(await compute.exited).toBe(1);
    await waitFor(() => processesUsing(pgdata).length === 0, {
      what: "nothing left using PGDATA",
      timeoutMs: 15_000,
    });
    await stack.stop();
  });
});

/** The pgbin wrapper is running as the postmaster: `<wrapper> -D <pgdata>`. */
function postgresWaiting(wrapper: string, pgdata: string): boolean {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      const at = argv.indexOf(wrapper);
      if (at >= 0 && argv[at + 1] === "-D" && argv[at + 2] === pgdata) return true;
    } catch {
      // gone
    }
  }
  return false;
}

/** Writes zeros to `path` until the file system is full. */
function fill(path: string): void {
  const fd = openSync(path, "w");
  const block = new Uint8Array(1 << 20);
  try {
    for (;;) writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
  // The last partial block: fill what is left in 4 KiB steps.
  const fd2 = openSync(path, "a");
  try {
    for (;;) writeSync(fd2, block.subarray(0, 4096));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd2);
  }
}
