// POST /promote through the compiled binary: a Replica compute started from the local stack is
// promoted with a Primary spec, and the refusals and the failpoint answer as the reference does.
// Vanilla Postgres 15 blocks every commit once synchronous_standby_names = walproposer, so the
// new spec sets synchronous_commit = local and an empty neon.safekeepers.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Json, jsonOf } from "../support/compute.ts";
import { endpointStorageFixture } from "../support/lfc.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { psql, type Started, start, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

/** The old primary's spec as the control plane would send it: this stack, mode Primary. */
function primarySpec(s: Started): Json {
  const spec = s.stack.spec as Json;
  return {
    ...spec,
    mode: "Primary",
    safekeeper_connstrings: [],
    cluster: {
      ...spec.cluster,
      settings: [
        ...spec.cluster.settings,
        { name: "synchronous_commit", value: "local", vartype: "enum" },
        { name: "neon.safekeepers", value: "", vartype: "string" },
      ],
    },
  };
}

function postPromote(s: Started, body: unknown, headers: Record<string, string> = {}) {
  return s.compute.post("/promote", s.token, {
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** A prewarm attempt that settles as `skipped` (the fake endpoint storage has no state). */
async function prewarmSkipped(s: Started) {
  expect((await s.compute.post("/lfc/prewarm", s.token)).status).toBe(202);
  const st = await waitFor(
    async () => {
      const st = await jsonOf(s.compute.get("/lfc/prewarm", s.token));
      return st.status === "prewarming" ? undefined : st;
    },
    { what: "the prewarm to settle", timeoutMs: 20_000 },
  );
  expect(st).toEqual({ status: "skipped" });
}

describe("promote", () => {
  test("a prewarmed Replica becomes a writable Primary; repeated calls get the same body", async () => {
    const es = await endpointStorageFixture();
    const s = await start({
      mode: "Replica",
      template: { initSql: es.standinSql },
      spec: es.specFields,
    });
    await waitStatus(s, "running");
    expect(await psql(s, "select pg_is_in_recovery()")).toBe("t");
    await prewarmSkipped(s);

    const body = { spec: primarySpec(s), wal_flush_lsn: s.stack.template.checkpointLsn };
    // Two at once: one promotion, both get its result.
    const [a, b] = await Promise.all([postPromote(s, body), postPromote(s, body)]);
    expect(a.status).toBe(200);
    expect(a.headers.get("content-type")).toBe("application/json");
    const first: Json = await a.json();
    expect(Object.keys(first)).toEqual([
      "status",
      "lsn_wait_time_ms",
      "pg_promote_time_ms",
      "reconfigure_time_ms",
    ]);
    expect(first.status).toBe("completed");
    for (const k of ["lsn_wait_time_ms", "pg_promote_time_ms", "reconfigure_time_ms"]) {
      expect(Number.isInteger(first[k]) && first[k] >= 0).toBe(true);
    }
    // The replica had replayed past the LSN already: no 1 s poll.
    expect(first.lsn_wait_time_ms).toBeLessThan(1000);
    expect(b.status).toBe(200);
    expect(await b.json()).toEqual(first);

    expect(await psql(s, "select pg_is_in_recovery()")).toBe("f");
    expect(await psql(s, "show synchronous_standby_names")).toBe("walproposer");
    expect(await psql(s, "show synchronous_commit")).toBe("local");
    expect(await psql(s, "show neon.compute_mode")).toBe("primary");
    const auto = await readFile(join(s.stack.pgdata, "postgresql.auto.conf"), "utf8");
    expect(auto).toContain("neon.safekeepers = ''");
    expect(auto).toContain("synchronous_standby_names = 'walproposer'");
    expect(await Bun.file(join(s.stack.pgdata, "standby.signal")).exists()).toBe(false);
    expect(
      await psql(s, "create table promoted(x int); insert into promoted values (42) returning x"),
    ).toBe("CREATE TABLE\n42\nINSERT 0 1");
    expect(await jsonOf(s.compute.get("/status", s.token))).toMatchObject({
      status: "running",
      error: null,
    });

    // Later calls, even with another LSN, answer the memoized result.
    const again = await postPromote(s, { ...body, wal_flush_lsn: "FF/0" });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(first);

    // The compute is a Primary now: the shutdown syncs safekeepers and reports the LSN.
    expect(await terminate(s, "immediate")).toEqual({
      code: 200,
      body: { lsn: s.stack.template.checkpointLsn },
    });
    expect(await s.compute.exited).toBe(0);
    expect(await s.stack.pgbin.syncCalls()).toHaveLength(1);
    await es.storage.stop();
  });

  test("the compute-promotion failpoint fails it (500, memoized) and the replica stays a standby", async () => {
    const es = await endpointStorageFixture();
    const s = await start({
      mode: "Replica",
      template: { initSql: es.standinSql },
      spec: es.specFields,
      env: { COMPUTE_CTL_TESTING: "1", FAILPOINTS: "compute-promotion=return(0)" },
    });
    await waitStatus(s, "running");
    await prewarmSkipped(s);
    const body = { spec: primarySpec(s), wal_flush_lsn: s.stack.template.checkpointLsn };
    const r = await postPromote(s, body);
    expect(r.status).toBe(500);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(await r.json()).toEqual({ status: "failed", error: "compute-promotion failpoint" });
    const again = await postPromote(s, body);
    expect(again.status).toBe(500);
    expect(await again.json()).toEqual({ status: "failed", error: "compute-promotion failpoint" });
    expect(await psql(s, "select pg_is_in_recovery()")).toBe("t");
    expect(await jsonOf(s.compute.get("/status", s.token))).toMatchObject({ status: "running" });
    expect(await terminate(s, "immediate")).toEqual({ code: 200, body: { lsn: null } });
    await es.storage.stop();
  });

  test("a Primary is refused with the reference's failure", async () => {
    const s = await start({ mode: "Primary", safekeepers: "agree" });
    await waitStatus(s, "running");
    const r = await postPromote(s, { spec: s.stack.spec, wal_flush_lsn: "0/0" });
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({
      status: "failed",
      error: 'compute mode "primary" is not replica',
    });
    await terminate(s, "immediate");
  });

  test("bad bodies are rejected before any promotion; a Replica never prewarmed is refused", async () => {
    const s = await start({ mode: "Replica" });
    await waitStatus(s, "running");
    const unauthenticated = await s.compute.post("/promote", undefined, {
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    // No Authorization header: the guard's 400, before the body is read.
    expect(unauthenticated.status).toBe(400);
    expect((await postPromote(s, "{}", { "content-type": "text/plain" })).status).toBe(415);
    expect((await postPromote(s, "{")).status).toBe(400);
    const missing = await postPromote(s, { spec: primarySpec(s) });
    expect(missing.status).toBe(422);
    expect((await jsonOf(missing)).error).toContain("wal_flush_lsn");
    // A Primary spec without safekeepers fails ParsedSpec validation: 400, as /configure.
    const invalid = await postPromote(s, {
      spec: { ...s.stack.spec, mode: "Primary", safekeeper_connstrings: [] },
      wal_flush_lsn: 0,
    });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toEqual({ error: "safekeeper connstrings should be provided" });

    // The integer LSN form is accepted; no prewarm was attempted, so the promotion fails.
    const r = await postPromote(s, { spec: primarySpec(s), wal_flush_lsn: 0 });
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ status: "failed", error: "compute NotPrewarmed" });
    expect(await psql(s, "select pg_is_in_recovery()")).toBe("t");
    await terminate(s, "immediate");
  });
});
