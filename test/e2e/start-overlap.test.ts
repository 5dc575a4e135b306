// What the start does beside the basebackup rather than before it: the old PGDATA is moved aside
// and deleted in the background (nothing of it reaches the new PGDATA, nothing is left beside
// it), and with a spec the HTTP servers come up while the pageserver is still working, but never
// later than `running`; a port that cannot be bound still ends the start with exit 1.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { runBinary } from "../support/binary.ts";
import { startCompute, writeUserFile } from "../support/compute.ts";
import { ed25519Key, jwks } from "../support/jwt.ts";
import { processesUsing } from "../support/leftovers.ts";
import { freePort } from "../support/ports.ts";
import { cleanup, RUN_AS, waitFor } from "../support/proc.ts";
import { startLocalStack } from "../support/stack.ts";
import {
  expectNothingLeft,
  FAST,
  start,
  statusOf,
  terminate,
  waitStatus,
} from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

/** `base/...` below `root`, every level owned by the user compute_ctl runs as. */
function userDirs(root: string, ...parts: string[]): string {
  let path = root;
  for (const part of ["", ...parts]) {
    path = join(path, part);
    mkdirSync(path, { recursive: true });
    if (RUN_AS) chownSync(path, RUN_AS.uid, RUN_AS.gid);
  }
  return path;
}

const discarded = (pgdata: string) =>
  readdirSync(dirname(pgdata)).filter((n) => n.startsWith(".pgdata.discarded-"));

describe("the old PGDATA", () => {
  test("is gone from the new PGDATA at once, and deleted beside it, leftovers of a dead run too", async () => {
    const stack = await startLocalStack({
      safekeepers: "agree",
      pageserverFaults: { slowMs: 1500 },
    });
    const { pgdata } = stack;
    // An earlier run's PGDATA, and a copy that a killed compute_ctl had moved aside but not
    // deleted yet.
    userDirs(pgdata, "base", "1");
    await writeUserFile(join(pgdata, "old-marker"), "from the previous run");
    await writeUserFile(join(pgdata, "base", "1", "1259"), "x".repeat(8192));
    const leftover = join(dirname(pgdata), ".pgdata.discarded-4242-1700000000000");
    userDirs(leftover, "base", "1");
    await writeUserFile(join(leftover, "base", "1", "1259"), "x".repeat(8192));

    const key = await ed25519Key();
    const compute = await startCompute({
      config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata,
      env: { ...FAST, RUST_LOG: "debug" },
    });
    const token = await key.sign({ compute_id: compute.computeId });
    const s = { stack, compute, key, token };
    // Both discarded copies are deleted while the pageserver has not answered yet.
    await waitFor(() => discarded(pgdata).length === 0, {
      what: "the discarded copies deleted",
      timeoutMs: 10_000,
    });
    expect((await statusOf(s)).status).toBe("init");
    await waitStatus(s, "running");
    expect(existsSync(join(pgdata, "old-marker"))).toBe(false);
    expect(existsSync(join(pgdata, "PG_VERSION"))).toBe(true);
    expect(statSync(pgdata).mode & 0o777).toBe(0o700);
    expect(compute.stderr.text).toContain(`removing ${leftover}, left by an earlier run`);
    expect(compute.stderr.text).toMatch(/DEBUG removed \S+\/\.pgdata\.discarded-\d+-\d+ in/);
    await terminate(s, "immediate");
    expect(await compute.exited).toBe(0);
    await expectNothingLeft(s);
    await stack.stop();
  });
  test("one that cannot be deleted (a directory of another owner) no longer stops the start", async () => {
    if (!RUN_AS) {
      console.warn("skipped: needs root to leave a directory compute_ctl cannot delete");
      return;
    }
    const stack = await startLocalStack({ safekeepers: "agree" });
    const { pgdata } = stack;
    userDirs(pgdata);
    // base/ stays root's: its entries cannot be unlinked by compute_ctl's user.
    mkdirSync(join(pgdata, "base", "1"), { recursive: true });
    await Bun.write(join(pgdata, "base", "1", "old-marker"), "x");
    const key = await ed25519Key();
    const compute = await startCompute({
      config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata,
      env: FAST,
    });
    const s = { stack, compute, key, token: await key.sign({ compute_id: compute.computeId }) };
    await waitStatus(s, "running");
    expect(existsSync(join(pgdata, "base", "1", "old-marker"))).toBe(false);
    expect(compute.stderr.text).toMatch(
      /WARN could not remove \S+\/\.pgdata\.discarded-\d+-\d+: EACCES/,
    );
    await terminate(s, "immediate");
    expect(await compute.exited).toBe(0);
    await expectNothingLeft(s);
    await stack.stop();
  });
});

describe("the HTTP servers with a spec", () => {
  test("answer before the basebackup's first byte, and before running", async () => {
    const s = await start({ pageserverFaults: { slowMs: 3000 }, env: { RUST_LOG: "debug" } });
    // start() returned once /metrics answered: the pageserver is still sleeping.
    expect((await statusOf(s)).status).toBe("init");
    expect(s.compute.stderr.text).not.toContain("start phase basebackup_first_byte");
    await waitStatus(s, "running");
    const lines = s.compute.stderr.text.split("\n");
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const listening = at(/internal HTTP server listening/);
    expect(listening).toBeGreaterThan(-1);
    expect(listening).toBeLessThan(at(/start phase basebackup_first_byte/));
    expect(listening).toBeLessThan(at(/Changing compute status from init to running/));
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
  });

  test("a port in use ends the start: one ERROR line, exit 1, nothing left, never running", async () => {
    const stack = await startLocalStack({
      safekeepers: "agree",
      pageserverFaults: { slowMs: 2000 },
    });
    const port = await freePort();
    const blocker = Bun.serve({ hostname: "::", port, fetch: () => new Response("busy") });
    try {
      const cfg = join(dirname(stack.pgdata), "config.json");
      await writeUserFile(
        cfg,
        JSON.stringify({ spec: stack.spec, compute_ctl_config: { jwks: { keys: [] } } }),
      );
      const r = await runBinary(
        [
          ...["-D", stack.pgdata, "-C", stack.connstr, "-b", stack.pgbin.pgbin],
          ...["--compute-id", "c", "--external-http-port", String(port)],
          ...["--internal-http-port", String(await freePort()), "-c", cfg],
        ],
        { env: { OTEL_SDK_DISABLED: "true" }, timeoutMs: 30_000 },
      );
      expect(r.code).toBe(1);
      const errors = r.stderr.split("\n").filter((l) => / ERROR /.test(l));
      expect(errors.map((l) => l.replace(/^\S+Z\s+/, ""))).toEqual([
        `ERROR compute_ctl failed: failed to bind the compute_ctl external HTTP server to [::]:${port}: Failed to start server. Is port ${port} in use?`,
      ]);
      expect(r.stderr).not.toContain("from init to running");
      // Well before the pageserver answered.
      expect(r.ms).toBeLessThan(15_000);
      expect(processesUsing(stack.pgdata)).toEqual([]);
    } finally {
      blocker.stop(true);
      await stack.stop();
    }
  });
});
