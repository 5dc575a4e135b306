// The promotion flow against a scripted SQL session and a recording lifecycle: the reference's
// steps, statements, failure texts and single-run semantics. The e2e test runs it against a real
// Postgres 15 standby.
import { afterEach, describe, expect, test } from "bun:test";
import { decode, parseJson } from "../../../src/api/decode.ts";
import { type ParsedSpec, parseSpec } from "../../../src/api/parsed-spec.ts";
import { PromoteConfig, walFlushLsn } from "../../../src/api/promote.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import {
  CATCH_UP_RETRIES,
  keepOwnPort,
  type PromoteDeps,
  type PromoteSql,
  promote,
} from "../../../src/compute/promote.ts";
import { initFailpoints, resetFailpoints } from "../../../src/failpoints.ts";
import type { LfcPrewarmState } from "../../../src/lfc/state.ts";
import { type Json, minimalSpec } from "../api/helpers.ts";

afterEach(resetFailpoints);

const pspec = (overrides: Json = {}): ParsedSpec =>
  parseSpec(decode(ComputeSpec, { ...minimalSpec(), ...overrides }));

const REPLICA = () =>
  pspec({
    mode: "Replica",
    safekeeper_connstrings: [],
    cluster: { roles: [], databases: [], postgresql_conf: "port=5433\nfsync=off\n" },
  });
const PRIMARY = () =>
  pspec({
    safekeeper_connstrings: ["sk1:5454", "sk2:5454"],
    cluster: { roles: [], databases: [], postgresql_conf: "port=5432" },
  });

/** Answers each statement from `answers` (a value, or a function of the call count). */
function scriptedSql(answers: Record<string, unknown | ((n: number) => unknown)>) {
  const statements: string[] = [];
  let closed = false;
  const counts = new Map<string, number>();
  const sql: PromoteSql = {
    async query(text) {
      statements.push(text);
      const n = counts.get(text) ?? 0;
      counts.set(text, n + 1);
      const answer = answers[text];
      const v = typeof answer === "function" ? answer(n) : answer;
      if (v instanceof Error) throw v;
      return [[v]];
    },
    async close() {
      closed = true;
    },
  };
  return { sql, statements, isClosed: () => closed };
}

const HAPPY = {
  "SELECT pg_catalog.pg_last_wal_replay_lsn()": "0/169AD58",
  "SELECT * FROM pg_catalog.pg_promote()": true,
  "SHOW transaction_read_only": "off",
};

function setup(
  opts: {
    spec?: ParsedSpec | null;
    prewarm?: LfcPrewarmState;
    answers?: Record<string, unknown>;
    testing?: boolean;
    reconfigure?: () => Promise<void>;
  } = {},
) {
  const script = scriptedSql({ ...HAPPY, ...opts.answers });
  const adopted: ParsedSpec[] = [];
  let connects = 0;
  const lifecycle = {
    spec: opts.spec === undefined ? REPLICA() : opts.spec,
    async adoptPromotedSpec(p: ParsedSpec) {
      adopted.push(p);
      await opts.reconfigure?.();
      this.spec = p;
    },
  };
  const deps: PromoteDeps = {
    connstr: new URL("postgresql://cloud_admin@127.0.0.1:1/postgres"),
    lfc: { prewarmState: () => opts.prewarm ?? { status: "skipped" } },
    lifecycle,
    connect: async () => {
      connects++;
      return script.sql;
    },
    retryIntervalMs: 1,
    testing: () => opts.testing ?? false,
  };
  return { deps, lifecycle, adopted, script, connects: () => connects };
}

describe("the flow", () => {
  test("runs the reference's statements in order, adopts the new spec and reports timings", async () => {
    const t = setup();
    const next = PRIMARY();
    const state = await promote(t.deps, next, 0x169ad58n);
    expect(state.status).toBe("completed");
    expect(Object.keys(state)).toEqual([
      "status",
      "lsn_wait_time_ms",
      "pg_promote_time_ms",
      "reconfigure_time_ms",
    ]);
    expect(t.script.statements).toEqual([
      "SELECT pg_catalog.pg_last_wal_replay_lsn()",
      "ALTER SYSTEM SET neon.safekeepers='sk1:5454,sk2:5454'",
      "ALTER SYSTEM SET synchronous_standby_names=walproposer",
      "SELECT pg_catalog.pg_reload_conf()",
      "SELECT * FROM pg_catalog.pg_promote()",
      "SHOW transaction_read_only",
    ]);
    expect(t.script.isClosed()).toBe(true);
    expect(t.adopted).toEqual([next]);
  });

  test("the reconfigure time covers adopting the spec", async () => {
    const t = setup({ reconfigure: () => Bun.sleep(60) });
    const state = await promote(t.deps, PRIMARY(), 0n);
    if (state.status !== "completed") throw new Error(JSON.stringify(state));
    expect(state.reconfigure_time_ms).toBeGreaterThanOrEqual(55);
  });

  test("polls the replay LSN until it reaches wal_flush_lsn", async () => {
    const lsns = ["0/100", "0/1FF", "0/200"];
    const t = setup({
      answers: { "SELECT pg_catalog.pg_last_wal_replay_lsn()": (n: number) => lsns[n] },
    });
    expect((await promote(t.deps, PRIMARY(), 0x200n)).status).toBe("completed");
    const polls = t.script.statements.filter((s) => s.includes("pg_last_wal_replay_lsn"));
    expect(polls).toHaveLength(3);
  });

  test(`gives up after ${CATCH_UP_RETRIES} retries (21 polls) without touching anything`, async () => {
    const t = setup({ answers: { "SELECT pg_catalog.pg_last_wal_replay_lsn()": "0/100" } });
    expect(await promote(t.deps, PRIMARY(), 0x200n)).toEqual({
      status: "failed",
      error: "didn't catch up with primary in 20 retries",
    });
    expect(t.script.statements).toHaveLength(CATCH_UP_RETRIES + 1);
    expect(t.script.isClosed()).toBe(true);
    expect(t.adopted).toHaveLength(0);
  });

  test("an LSN above 32 bits compares as 64-bit", async () => {
    const t = setup({ answers: { "SELECT pg_catalog.pg_last_wal_replay_lsn()": "1/0" } });
    expect((await promote(t.deps, PRIMARY(), 0xffffffffn)).status).toBe("completed");
  });

  test("a NULL replay LSN (not in recovery) fails instead of panicking", async () => {
    const t = setup({ answers: { "SELECT pg_catalog.pg_last_wal_replay_lsn()": null } });
    const state = await promote(t.deps, PRIMARY(), 0n);
    expect(state).toEqual({
      status: "failed",
      error: "getting last replay lsn: unexpected value null: not in recovery?",
    });
  });

  test("single quotes in a safekeeper string are doubled in the ALTER SYSTEM literal", async () => {
    const t = setup();
    await promote(t.deps, pspec({ safekeeper_connstrings: ["a'b:1"] }), 0n);
    expect(t.script.statements).toContain("ALTER SYSTEM SET neon.safekeepers='a''b:1'");
  });
});

describe("refusals and failures (reference texts)", () => {
  test("not a replica", async () => {
    const t = setup({ spec: PRIMARY() });
    expect(await promote(t.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: 'compute mode "primary" is not replica',
    });
    const s = setup({ spec: pspec({ mode: { Static: "0/10" } }) });
    expect(await promote(s.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: 'compute mode "static" is not replica',
    });
    expect(t.connects() + s.connects()).toBe(0);
  });

  test("no prewarm attempted, or one still running", async () => {
    const a = setup({ prewarm: { status: "not_prewarmed" } });
    expect(await promote(a.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: "compute NotPrewarmed",
    });
    const b = setup({ prewarm: { status: "prewarming" } });
    expect(await promote(b.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: "compute Prewarming",
    });
    expect(a.connects() + b.connects()).toBe(0);
  });

  test("a failed, cancelled or completed prewarm lets the promotion run", async () => {
    const prewarms: LfcPrewarmState[] = [
      { status: "failed", error: "compute-prewarm failpoint" },
      { status: "cancelled" },
      {
        status: "completed",
        total: 1,
        prewarmed: 1,
        skipped: 0,
        state_download_time_ms: 0,
        uncompress_time_ms: 0,
        prewarm_time_ms: 0,
      },
    ];
    for (const prewarm of prewarms) {
      expect((await promote(setup({ prewarm }).deps, PRIMARY(), 0n)).status).toBe("completed");
    }
  });

  test("the compute-promotion failpoint fires after the reload, before pg_promote", async () => {
    initFailpoints({ COMPUTE_CTL_TESTING: "1", FAILPOINTS: "compute-promotion=return(0)" });
    const t = setup();
    expect(await promote(t.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: "compute-promotion failpoint",
    });
    expect(t.script.statements.at(-1)).toBe("SELECT pg_catalog.pg_reload_conf()");
    expect(t.script.isClosed()).toBe(true);
    expect(t.adopted).toHaveLength(0);
  });

  test("pg_promote() returning false, and a read-only result", async () => {
    const a = setup({ answers: { "SELECT * FROM pg_catalog.pg_promote()": false } });
    expect(await promote(a.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: "pg_promote() failed",
    });
    const b = setup({ answers: { "SHOW transaction_read_only": "on" } });
    expect(await promote(b.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: "replica in read only mode after promotion",
    });
    expect(a.adopted.length + b.adopted.length).toBe(0);
  });

  test("SQL errors carry the step as context", async () => {
    const t = setup({
      answers: { "ALTER SYSTEM SET synchronous_standby_names=walproposer": new Error("boom") },
    });
    expect(await promote(t.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: "setting synchronous_standby_names: boom",
    });
    const c = setup();
    c.deps.connect = async () => {
      throw new Error("connection refused");
    };
    expect(await promote(c.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: "connecting to postgres: connection refused",
    });
  });

  test("a failed reconfigure fails the promotion", async () => {
    const t = setup({ reconfigure: () => Promise.reject(new Error("reload failed")) });
    expect(await promote(t.deps, PRIMARY(), 0n)).toEqual({
      status: "failed",
      error: "reload failed",
    });
  });
});

describe("single run", () => {
  test("concurrent and later calls share the first call's result, without running again", async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const t = setup({ reconfigure: () => gate });
    const first = promote(t.deps, PRIMARY(), 0n);
    const second = promote(t.deps, PRIMARY(), 0xffn);
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a.status).toBe("completed");
    expect(b).toBe(a);
    expect(await promote(t.deps, PRIMARY(), 0n)).toBe(a);
    expect(t.connects()).toBe(1);
    expect(t.adopted).toHaveLength(1);
  });

  test("a failure is memoized too", async () => {
    const t = setup({ prewarm: { status: "not_prewarmed" } });
    const a = await promote(t.deps, PRIMARY(), 0n);
    t.deps.lfc = { prewarmState: () => ({ status: "skipped" }) };
    expect(await promote(t.deps, PRIMARY(), 0n)).toBe(a);
    expect(a).toEqual({ status: "failed", error: "compute NotPrewarmed" });
  });
});

describe("testing builds keep the replica's port", () => {
  test("port= from the old postgresql_conf is appended to the new one", async () => {
    const t = setup({ testing: true });
    await promote(t.deps, PRIMARY(), 0n);
    expect(t.adopted[0]?.spec.cluster.postgresql_conf).toBe("port=5432\nport=5433\n");
    expect(t.adopted[0]?.spec.mode).toBe("Primary");
  });

  test("without a postgresql_conf there is nothing to take the port from", () => {
    const noConf = pspec({ mode: "Replica", cluster: { roles: [], databases: [] } });
    expect(() => keepOwnPort(noConf, PRIMARY())).toThrow(
      "pspec.spec.cluster.postgresql_conf missing for endpoint",
    );
    expect(() => keepOwnPort(REPLICA(), pspec({ cluster: { roles: [], databases: [] } }))).toThrow(
      "pspec.spec.cluster.postgresql_conf missing for supplied config",
    );
  });
});

describe("PromoteConfig", () => {
  const body = (lsn: unknown) => JSON.stringify({ spec: minimalSpec(), wal_flush_lsn: lsn });

  test("wal_flush_lsn is an LSN string or an integer", () => {
    expect(walFlushLsn(parseJson(PromoteConfig, body("1/a")))).toBe(0x1_0000000an);
    expect(walFlushLsn(parseJson(PromoteConfig, body(4294967306)))).toBe(0x1_0000000an);
  });

  test("anything else is a shape error naming the field", () => {
    for (const bad of ["nope", -1, 1.5, null]) {
      expect(() => parseJson(PromoteConfig, body(bad))).toThrow("wal_flush_lsn");
    }
    expect(() => parseJson(PromoteConfig, JSON.stringify({ spec: minimalSpec() }))).toThrow(
      "wal_flush_lsn: missing field",
    );
  });
});
