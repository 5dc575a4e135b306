// Nothing compute_ctl starts outlives it, however it dies: every child gets a parent-death
// signal, so 12 s after a SIGKILL of compute_ctl no process of the run is left (the reference
// leaves Postgres running). And a start that finds a live postmaster on its PGDATA stops it
// before wiping, instead of failing on the port that postmaster holds.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { PG_BINDIR, startCompute } from "../support/compute.ts";
import { ed25519Key, jwks } from "../support/jwt.ts";
import { processesUsing } from "../support/leftovers.ts";
import { cleanup, collectStream, spawnAs, waitFor } from "../support/proc.ts";
import { startLocalStack } from "../support/stack.ts";
import { FAST, start, waitStatus } from "../support/started.ts";

setDefaultTimeout(120_000);
afterAll(cleanup);

async function nothingLeftWithin(pgdata: string, ms: number): Promise<void> {
  await waitFor(() => processesUsing(pgdata).length === 0, {
    what: `no process left using ${pgdata}`,
    timeoutMs: ms,
  }).catch((err) => {
    throw new Error(`${err.message}: ${JSON.stringify(processesUsing(pgdata))}`);
  });
}

describe("SIGKILL of compute_ctl", () => {
  test("a running compute: Postgres and its backends are gone within 12 s", async () => {
    const s = await start();
    await waitStatus(s, "running");
    const before = processesUsing(s.stack.pgdata);
    // The postmaster and its auxiliary processes at least.
    expect(before.length).toBeGreaterThan(3);
    // Stay running a while first: the signal is tied to the spawning thread, not only to a
    // short-lived start-up phase.
    await Bun.sleep(2000);
    expect(processesUsing(s.stack.pgdata).length).toBeGreaterThan(3);
    s.compute.proc.kill("SIGKILL");
    await s.compute.exited;
    await nothingLeftWithin(s.stack.pgdata, 12_000);
  });

  test("during --sync-safekeepers: the sync process is gone within 12 s", async () => {
    const s = await start({ sync: { hang: true } });
    await waitFor(() => processesUsing(s.stack.pgdata).some((p) => p.cmdline.includes("sleep")), {
      what: "the hanging --sync-safekeepers",
      timeoutMs: 30_000,
    });
    s.compute.proc.kill("SIGKILL");
    await s.compute.exited;
    await nothingLeftWithin(s.stack.pgdata, 12_000);
  });
});

describe("a live postmaster on PGDATA at start", () => {
  test("is stopped before the wipe, with one log line, and the start succeeds", async () => {
    const stack = await startLocalStack();
    // A postmaster of an "earlier run": initdb'ed into PGDATA and listening on the spec's port.
    const init = spawnAs(
      [`${PG_BINDIR}/initdb`, "-D", stack.pgdata, "-U", "cloud_admin", "--no-sync"],
      {
        detached: false,
      },
    );
    const initErr = collectStream(init.stderr);
    expect(await init.exited, initErr.text).toBe(0);
    const old = spawnAs([
      `${PG_BINDIR}/postgres`,
      "-D",
      stack.pgdata,
      "-p",
      String(stack.pgPort),
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      `unix_socket_directories=${stack.socketDir}`,
    ]);
    collectStream(old.stderr, { prefix: "[old postgres] " });
    await waitFor(
      async () =>
        (await readFile(join(stack.pgdata, "postmaster.pid"), "utf8").catch(() => "")).includes(
          "ready",
        ),
      { what: "the old postmaster", timeoutMs: 30_000 },
    );

    const key = await ed25519Key();
    const compute = await startCompute({
      config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata: stack.pgdata,
      env: FAST,
    });
    const token = await key.sign({ compute_id: compute.computeId });
    await waitStatus({ stack, compute, key, token }, "running", 60_000);
    expect(old.exitCode).not.toBeNull();
    const lines = compute.stderr.text.split("\n").filter((l) => l.includes("from an earlier run"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`(pid ${old.pid}) is still running on ${stack.pgdata}: stopping it`);
    compute.proc.kill("SIGKILL");
    await nothingLeftWithin(stack.pgdata, 12_000);
  });
});
