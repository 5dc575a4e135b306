// pgbouncer through the compiled binary: on a NeonVM (AUTOSCALING) the settings land in
// /etc/pgbouncer.ini under the host root and RELOAD reaches the real pgbouncer over its Unix
// socket as user pgbouncer; a reconfigure tunes it again; a pgbouncer that is not there does not
// hold up the start.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { jsonOf } from "../support/compute.ts";
import { configure } from "../support/configure.ts";
import { makeFakeHost } from "../support/host.ts";
import { startPgbouncer } from "../support/pgbouncer.ts";
import { freePort } from "../support/ports.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { start, statusOf, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

describe("pgbouncer", () => {
  test("NeonVM: start and reconfigure tune the real pgbouncer through its Unix socket", async () => {
    const host = await makeFakeHost();
    const pgb = await startPgbouncer({
      dir: host.path("/tmp"),
      iniPath: host.path("/etc/pgbouncer.ini"),
    });
    const s = await start({
      spec: { pgbouncer_settings: { default_pool_size: "17" } },
      // AUTOSCALING also starts the vm-monitor: on a port of its own.
      extraArgs: ["--vm-monitor-addr", `127.0.0.1:${await freePort()}`],
      env: {
        ...host.env,
        AUTOSCALING: "true",
        COMPUTE_CTL_TESTING_PGBOUNCER_PORT: String(pgb.port),
      },
    });
    await waitStatus(s, "running");
    await waitFor(async () => (await pgb.show("default_pool_size")) === "17", {
      what: "default_pool_size 17 after RELOAD",
      timeoutMs: 15_000,
    });
    expect(await readFile(pgb.ini, "utf8")).toContain("\ndefault_pool_size=17\n");

    const spec = { ...s.stack.spec, pgbouncer_settings: { default_pool_size: "23" } };
    expect((await configure(s, spec)).code).toBe(200);
    await waitFor(async () => (await pgb.show("default_pool_size")) === "23", {
      what: "default_pool_size 23 after the reconfigure",
      timeoutMs: 15_000,
    });
    expect(s.compute.stderr.text).not.toContain("error while tuning pgbouncer");

    // A value that would add a line to the ini is refused before anything is written.
    const before = await readFile(pgb.ini, "utf8");
    const evil = { ...spec, pgbouncer_settings: { default_pool_size: "1\nadmin_users=evil" } };
    const refused = await configure(s, evil);
    expect(refused.code).toBe(400);
    expect(refused.body.error).toContain("default_pool_size has a control character");
    expect(await readFile(pgb.ini, "utf8")).toBe(before);
    expect((await statusOf(s)).status).toBe("running");
    expect((await terminate(s, "immediate")).code).toBe(200);
    await s.compute.exited;
    await s.stack.stop();
  });

  test("pgbouncer absent: the compute runs at once, the tune fails after 4 attempts and is logged", async () => {
    const host = await makeFakeHost();
    const port = await freePort();
    const s = await start({
      spec: { pgbouncer_settings: { default_pool_size: "17" } },
      env: { ...host.env, COMPUTE_CTL_TESTING_PGBOUNCER_PORT: String(port) },
    });
    const st = await waitStatus(s, "running");
    expect(st.error).toBeNull();
    const timings = await jsonOf(s.compute.get("/metrics.json", s.token));
    expect(s.compute.stderr.text).not.toContain("error while tuning pgbouncer");
    await waitFor(() => s.compute.stderr.text.includes("error while tuning pgbouncer"), {
      what: "the tune's failure in the log",
      timeoutMs: 15_000,
    });
    expect(s.compute.stderr.text).toContain(
      "could not connect to the pgbouncer admin console after 4 attempts",
    );
    expect(timings.total_startup_ms).toBeLessThan(30_000);
    expect((await statusOf(s)).status).toBe("running");
    expect((await terminate(s, "immediate")).code).toBe(200);
    await s.compute.exited;
    await s.stack.stop();
  });
});
