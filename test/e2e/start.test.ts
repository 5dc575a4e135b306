// The start path end to end: the compiled binary against the local stack (fake pageserver and
// safekeepers, the pgbin wrapper running the real Postgres 15), in every mode, and back down.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { lstat, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { startFakePageserver } from "../fakes/pageserver.ts";
import { jsonOf } from "../support/compute.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { TENANT, TIMELINE } from "../support/stack.ts";
import {
  expectNothingLeft,
  psql,
  start,
  statusOf,
  terminate,
  waitStatus,
} from "../support/started.ts";

setDefaultTimeout(60_000);
afterAll(cleanup);

describe("Primary", () => {
  test("slow path: sync-safekeepers, basebackup at its LSN, ready, then /terminate syncs and exits 0", async () => {
    const s = await start({ safekeepers: "absent" });
    const st = await waitStatus(s, "running");
    expect(st).toMatchObject({ tenant: TENANT, timeline: TIMELINE, error: null });
    expect(await psql(s, "select current_user || ' ' || pg_is_in_recovery()")).toBe(
      "cloud_admin false",
    );

    const lsn = s.stack.template.checkpointLsn;
    const calls = await s.stack.pgbin.syncCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ env: { PGDATA: s.stack.pgdata }, confHasSafekeepers: true });
    expect(calls[0]?.argv).not.toContain("-D");
    expect(s.stack.pageserver.requests.map((r) => r.command)).toEqual([
      `basebackup ${TENANT} ${TIMELINE} ${lsn} --gzip`,
    ]);
    expect(s.stack.pageserver.requests[0]?.startup).toMatchObject({
      application_name: "compute_ctl",
      options: "-c neon.compute_mode=primary",
    });
    expect(s.stack.pageserver.rejections).toEqual([]);

    // PGDATA fix-ups.
    const pgdata = s.stack.pgdata;
    expect(((await lstat(pgdata)).mode & 0o777).toString(8)).toBe("700");
    expect(await readlink(join(pgdata, "pg_dynshmem"))).toBe("/dev/shm/");
    expect(await readFile(join(pgdata, "pg_hba.conf"), "utf8")).toEndWith(
      "\nhost\tall\t\tall\t\tall\t\tmd5",
    );
    expect(await Bun.file(join(pgdata, "neon.signal")).exists()).toBe(true);
    expect(await Bun.file(join(pgdata, "standby.signal")).exists()).toBe(false);
    const conf = await readFile(join(pgdata, "postgresql.conf"), "utf8");
    expect(conf).toContain("neon.compute_mode=primary\n");
    expect(conf.trimEnd()).toEndWith("include_if_exists = 'compute_ctl_temp_override.conf'");

    const timings = await jsonOf(s.compute.get("/metrics.json", s.token));
    expect(timings.basebackup_bytes).toBe(Bun.file(s.stack.template.tarGzPath).size);
    expect(timings.start_postgres_ms).toBeGreaterThan(0);
    expect(timings.total_startup_ms).toBeGreaterThanOrEqual(timings.start_postgres_ms);
    const metrics = await (await s.compute.get("/metrics")).text();
    expect(metrics).toContain('compute_ctl_up{build_tag="latest",status="running"} 1');
    expect(s.compute.stderr.text).toMatch(
      /\nPG:\d{4}-\d\d-\d\d .*database system is ready to accept connections/,
    );

    const t = await terminate(s, "fast");
    expect(t).toEqual({ code: 200, body: { lsn } });
    expect(await s.compute.exited).toBe(0);
    expect(await s.stack.pgbin.syncCalls()).toHaveLength(2);
    await expectNothingLeft(s);
  });

  test("fast path: agreeing safekeepers skip sync-safekeepers at start", async () => {
    const s = await start({ safekeepers: "agree", token: "storage-token" });
    await waitStatus(s, "running");
    expect(await s.stack.pgbin.syncCalls()).toHaveLength(0);
    const lsn = s.stack.template.checkpointLsn;
    expect(s.stack.pageserver.requests.map((r) => r.command)).toEqual([
      `basebackup ${TENANT} ${TIMELINE} ${lsn} --gzip`,
    ]);
    expect(s.stack.pageserver.rejections).toEqual([]);
    const t = await terminate(s, "immediate");
    expect(t.code).toBe(200);
    expect(await s.compute.exited).toBe(0);
    const calls = await s.stack.pgbin.syncCalls();
    expect(calls).toHaveLength(1);
    expect(calls[0]?.env.NEON_AUTH_TOKEN).toBe("storage-token");
    await expectNothingLeft(s);
  });
});

describe("Replica and Static", () => {
  test("Replica: --replica basebackup without LSN, standby, no safekeeper sync, lsn null", async () => {
    const s = await start({ mode: "Replica" });
    await waitStatus(s, "running");
    expect(await psql(s, "select pg_is_in_recovery()")).toBe("t");
    expect(s.stack.pageserver.requests.map((r) => r.command)).toEqual([
      `basebackup ${TENANT} ${TIMELINE} --gzip --replica`,
    ]);
    expect(await Bun.file(join(s.stack.pgdata, "standby.signal")).exists()).toBe(true);
    expect(await terminate(s, "immediate")).toEqual({ code: 200, body: { lsn: null } });
    expect(await s.compute.exited).toBe(0);
    expect(await s.stack.pgbin.syncCalls()).toHaveLength(0);
    await expectNothingLeft(s);
  });

  test("Static: leases its LSN again and again; a NULL answer stops leasing, the compute runs on", async () => {
    let granted = 2;
    const answers: number[] = [];
    const s = await start({
      mode: "Static",
      lease: () => {
        answers.push(Date.now());
        return granted-- > 0 ? Date.now() + 3000 : null;
      },
    });
    await waitStatus(s, "running");
    const lsn = s.stack.template.checkpointLsn;
    // The lease task starts before the compute does, so a lease may come first.
    expect(
      s.stack.pageserver.requests
        .filter((r) => r.command.startsWith("basebackup"))
        .map((r) => r.command),
    ).toEqual([`basebackup ${TENANT} ${TIMELINE} ${lsn} --gzip --replica`]);
    await waitFor(() => answers.length >= 3, { what: "three lease requests", timeoutMs: 10_000 });
    const leases = s.stack.pageserver.requests.filter((r) => r.command.startsWith("lease lsn"));
    expect(leases[0]?.command).toBe(`lease lsn ${TENANT} ${TIMELINE} ${lsn} `);
    // valid 3 s → renew after max(3 s − 60 s, 1.5 s) = 1.5 s.
    const gap = (answers[1] ?? 0) - (answers[0] ?? 0);
    expect(gap).toBeGreaterThanOrEqual(1300);
    expect(gap).toBeLessThan(2500);
    await Bun.sleep(2000);
    expect(answers).toHaveLength(3);
    expect((await statusOf(s)).status).toBe("running");
    expect(await psql(s, "select pg_is_in_recovery()")).toBe("t");
    expect(await terminate(s, "immediate")).toEqual({ code: 200, body: { lsn: null } });
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
  });

  test("Static: a /configure that moves the pageservers wakes the lease loop onto the new one", async () => {
    // Valid for 10 minutes: the next renewal would be 9 minutes away.
    const s = await start({ mode: "Static", lease: () => Date.now() + 600_000 });
    const moved = await startFakePageserver({
      basebackup: () => new Uint8Array(0),
      tenantId: TENANT,
      timelineId: TIMELINE,
    });
    try {
      await waitStatus(s, "running");
      const leases = (ps: { requests: { command: string }[] }) =>
        ps.requests.filter((r) => r.command.startsWith("lease lsn"));
      await waitFor(() => leases(s.stack.pageserver).length === 1, { what: "the first lease" });
      const r = await s.compute.post("/configure", s.token, {
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          spec: { ...s.stack.spec, pageserver_connstring: moved.url },
          compute_ctl_config: { jwks: { keys: [] } },
        }),
      });
      expect(r.status).toBe(200);
      await waitFor(() => leases(moved).length === 1, {
        what: "a lease from the new pageserver",
        timeoutMs: 10_000,
      });
      expect(leases(moved)[0]?.command).toBe(
        `lease lsn ${TENANT} ${TIMELINE} ${s.stack.template.checkpointLsn} `,
      );
      expect(leases(s.stack.pageserver)).toHaveLength(1);
      expect(s.compute.stderr.text).toContain("Pageserver config changed");
      expect(await terminate(s, "immediate")).toEqual({ code: 200, body: { lsn: null } });
      expect(await s.compute.exited).toBe(0);
    } finally {
      await moved.stop();
    }
  });
});
