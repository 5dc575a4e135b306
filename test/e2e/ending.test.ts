// The compute's neighbours end with it, through the compiled binary: pgbouncer (the real one,
// pid in /tmp/pgbouncer.pid under the host root) is SIGKILLed and the fake local_proxy holding
// its pid file's lock gets SIGTERM, on /terminate always and on a signal unless --dev.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { makeFakeHost } from "../support/host.ts";
import { startFakeLocalProxy } from "../support/local-proxy.ts";
import { startPgbouncer } from "../support/pgbouncer.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { start, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

async function neighbours() {
  const host = await makeFakeHost();
  const pgb = await startPgbouncer({ dir: host.path("/tmp") });
  const lp = await startFakeLocalProxy(host.path("/etc/local_proxy/pid"));
  return { host, pgb, lp };
}

describe("ending pgbouncer and local_proxy", () => {
  test("/terminate ends both, also with --dev", async () => {
    const { host, pgb, lp } = await neighbours();
    const s = await start({ env: host.env, extraArgs: ["--dev"] });
    await waitStatus(s, "running");
    expect((await terminate(s, "immediate")).code).toBe(200);
    expect(await pgb.proc.exited).not.toBe(0);
    expect(pgb.proc.signalCode).toBe("SIGKILL");
    await waitFor(() => lp.terminated(), { what: "local_proxy's SIGTERM", timeoutMs: 5000 });
    expect(s.compute.stderr.text).toContain(
      `sending SIGKILL to pgbouncer process pid: ${pgb.proc.pid}`,
    );
    expect(s.compute.stderr.text).toContain(
      `sending SIGTERM to local_proxy process pid: ${lp.proc.pid}`,
    );
    await s.compute.exited;
    await s.stack.stop();
  });

  test("SIGTERM without --dev ends both", async () => {
    const { host, pgb, lp } = await neighbours();
    const s = await start({ env: host.env });
    await waitStatus(s, "running");
    s.compute.proc.kill("SIGTERM");
    expect(await s.compute.exited).toBe(1);
    await pgb.proc.exited;
    expect(pgb.proc.signalCode).toBe("SIGKILL");
    await waitFor(() => lp.terminated(), { what: "local_proxy's SIGTERM", timeoutMs: 5000 });
    await s.stack.stop();
  });

  test("SIGTERM with --dev leaves both running", async () => {
    const { host, pgb, lp } = await neighbours();
    const s = await start({ env: host.env, extraArgs: ["--dev"] });
    await waitStatus(s, "running");
    s.compute.proc.kill("SIGTERM");
    expect(await s.compute.exited).toBe(1);
    expect(s.compute.stderr.text).toContain(
      "Skipping pgbouncer and local_proxy termination because in dev mode",
    );
    await Bun.sleep(500);
    expect(pgb.proc.exitCode).toBeNull();
    expect(await lp.terminated()).toBe(false);
    expect(lp.proc.exitCode).toBeNull();
    await pgb.stop();
    await lp.stop();
    await s.stack.stop();
  });

  test("no pid files: /terminate says so and ends normally", async () => {
    const host = await makeFakeHost();
    const s = await start({ env: host.env });
    await waitStatus(s, "running");
    expect((await terminate(s, "immediate")).code).toBe(200);
    expect(await s.compute.exited).toBe(0);
    expect(s.compute.stderr.text).toContain(
      "pgbouncer pid file not found, process may not be running",
    );
    expect(s.compute.stderr.text).toContain(
      "local_proxy PID file not found, process may not be running",
    );
    await s.stack.stop();
  });
});
