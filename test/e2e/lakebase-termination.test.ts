// Ports of Neon's test_runner/regress/test_compute_termination.py, run against the compiled
// binary in lakebase mode, with the upstream tests' environment exactly: INSTANCE_ID and
// LD_LIBRARY_PATH, nothing else (no PATH, no HOME, no testing knob). The fake control plane
// serves the same bodies as the upstream handlers and switches spec the way
// SwitchableConfigHandler does.
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type FakeControlPlane, startFakeControlPlane } from "../fakes/control-plane.ts";
import { compiledBinary } from "../support/binary.ts";
import { processesUsing } from "../support/leftovers.ts";
import { freePort } from "../support/ports.ts";
import {
  cleanup,
  collectStream,
  makeUserDir,
  RUN_AS,
  type StreamBuffer,
  trackProcess,
} from "../support/proc.ts";
import { startLocalStack, TENANT, TIMELINE } from "../support/stack.ts";

afterAll(cleanup);

const PG_LIB = "/usr/lib/postgresql/15/lib";

/** The upstream EmptySpecHandler body. */
const EMPTY_BODY = JSON.stringify({
  status: "empty",
  spec: null,
  compute_ctl_config: { jwks: { keys: [] } },
});

interface Launched {
  proc: ReturnType<typeof Bun.spawn>;
  stderr: StreamBuffer;
  external: number;
  internal: number;
  pgdata: string;
}

/**
 * launch_compute_ctl: `<endpoint>/pgdata` (the endpoint directory exists, pgdata does not), the
 * upstream flags, and an environment of INSTANCE_ID and LD_LIBRARY_PATH only.
 */
async function launchComputeCtl(opts: {
  endpointName: string;
  controlPlane: FakeControlPlane;
  pgbin: string;
  pgPort: number;
}): Promise<Launched> {
  const bin = await compiledBinary();
  const endpoint = await makeUserDir("endpoint-");
  const pgdata = join(endpoint, "pgdata");
  const external = await freePort();
  const internal = await freePort();
  const cmd = [
    bin,
    "--external-http-port",
    String(external),
    "--internal-http-port",
    String(internal),
    "--pgdata",
    pgdata,
    "--connstr",
    `postgresql://cloud_admin@localhost:${opts.pgPort}/postgres`,
    "--pgbin",
    opts.pgbin,
    "--compute-id",
    opts.endpointName,
    "--control-plane-uri",
    opts.controlPlane.url,
    "--lakebase-mode",
    "true",
  ];
  const proc = Bun.spawn(cmd, {
    env: { INSTANCE_ID: "lakebase-instance-id", LD_LIBRARY_PATH: PG_LIB },
    cwd: endpoint,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    detached: true,
    ...(RUN_AS ? { uid: RUN_AS.uid, gid: RUN_AS.gid } : {}),
  });
  trackProcess(proc, true);
  const stderr = collectStream(proc.stderr, { prefix: "[compute_ctl] " });
  collectStream(proc.stdout, { prefix: "[compute_ctl stdout] " });
  return { proc, stderr, external, internal, pgdata };
}

/** wait_for_compute_status: poll /status (0.5 s timeout) every 0.5 s; fail if the process exits. */
async function waitForComputeStatus(c: Launched, expected: string, timeoutSeconds = 10) {
  const start = performance.now();
  while (performance.now() - start < timeoutSeconds * 1000) {
    try {
      const r = await fetch(`http://localhost:${c.external}/status`, {
        signal: AbortSignal.timeout(500),
      });
      if (r.status === 200) {
        const body = (await r.json()) as { status?: string };
        if (body.status === expected) return;
      }
    } catch {
      // not listening yet, or slow
    }
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) {
      throw new Error(
        `compute_ctl exited unexpectedly with code ${c.proc.exitCode}:\n${c.stderr.text.slice(-3000)}`,
      );
    }
    await Bun.sleep(500);
  }
  throw new Error(
    `compute_ctl failed to reach ${expected} status within ${timeoutSeconds} seconds:\n${c.stderr.text.slice(-3000)}`,
  );
}

async function exitWithin(c: Launched, ms: number): Promise<number | null> {
  const done = await Promise.race([
    c.proc.exited.then(() => true),
    Bun.sleep(ms).then(() => false),
  ]);
  return done ? c.proc.exitCode : null;
}

describe("test_compute_termination.py", () => {
  test("test_compute_terminate_empty: 200 with no body, exit 0 after 5 s", async () => {
    const cp = await startFakeControlPlane([{ status: 200, body: EMPTY_BODY }]);
    try {
      const c = await launchComputeCtl({
        endpointName: "test-empty-compute",
        controlPlane: cp,
        pgbin: "/usr/lib/postgresql/15/bin/postgres",
        pgPort: await freePort(),
      });
      await waitForComputeStatus(c, "empty");

      // No Postgres exists: the liveness probe says so (pg_isready found beside --pgbin
      // although the process has no PATH).
      const probe = await fetch(`http://localhost:${c.external}/hadron_liveness_probe`);
      expect(probe.status).toBe(500);
      expect(((await probe.json()) as { error: string }).error).toContain(
        "could not run `/usr/lib/postgresql/15/bin/pg_isready --port",
      );

      const t0 = performance.now();
      const response = await fetch(`http://localhost:${c.external}/terminate`, { method: "POST" });
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("");
      // Still up while the answer is on its way.
      const during = await fetch(`http://localhost:${c.external}/status`);
      expect(((await during.json()) as { status: string }).status).toBe("empty");

      const code = await exitWithin(c, 10_000);
      const ms = performance.now() - t0;
      expect(code).toBe(0);
      expect(ms).toBeGreaterThanOrEqual(4_500);
      expect(c.stderr.text).toContain("terminating empty compute - will exit process");
      expect(c.stderr.text).toContain("exiting process after terminating empty compute");
      expect(cp.rejected).toEqual([]);
    } finally {
      await cp.stop();
    }
  }, 30_000);

  test("test_compute_empty_spec_during_refresh_configuration: exits once the spec is gone", async () => {
    const stack = await startLocalStack({ safekeepers: "agree" });
    const pgPort = await freePort();
    // SwitchableConfigHandler's attached spec. Its `shared_preload_libraries='neon'` needs Neon's
    // Postgres; here the conf line puts the socket in the test's directory instead. The port
    // comes from the connstr alone (lakebase mode writes `port = <connstr port>`).
    const attached = JSON.stringify({
      status: "attached",
      spec: {
        format_version: 1.0,
        cluster: {
          roles: [],
          databases: [],
          postgresql_conf: `unix_socket_directories='${stack.socketDir}'`,
        },
        tenant_id: TENANT,
        timeline_id: TIMELINE,
        pageserver_connstring: stack.pageserver.url,
        safekeeper_connstrings: stack.safekeepers.map((s) => `localhost:${s.port}`),
        mode: "Primary",
        skip_pg_catalog_updates: true,
        reconfigure_concurrency: 1,
        suspend_timeout_seconds: -1,
      },
      compute_ctl_config: { jwks: { keys: [] } },
    });
    const cp = await startFakeControlPlane([{ status: 200, body: attached }]);
    try {
      const c = await launchComputeCtl({
        endpointName: `test-refresh-compute-${process.pid}`,
        controlPlane: cp,
        pgbin: stack.pgbin.pgbin,
        pgPort,
      });
      await waitForComputeStatus(c, "running", 30);
      expect(await Bun.file(join(c.pgdata, "postgresql.conf")).text()).toContain(
        `port = ${pgPort}\n# Databricks settings start\n# Databricks settings end\n`,
      );

      cp.setScript([{ status: 200, body: EMPTY_BODY }]);
      const before = cp.requests.length;
      const r = await fetch(`http://localhost:${c.internal}/refresh_configuration`, {
        method: "POST",
      });
      expect(r.status).toBe(200);

      const code = await exitWithin(c, 30_000);
      expect(code).toBe(1);
      expect(cp.requests.length).toBe(before + 1);
      expect(c.stderr.text).toContain(
        "Compute Manager signaled that this compute is no longer attached to any storage. Exiting.",
      );
      // Postgres went with it.
      expect(processesUsing(c.pgdata)).toEqual([]);
      expect(cp.rejected).toEqual([]);
    } finally {
      await cp.stop();
      await stack.stop();
    }
  }, 60_000);
});
