// The lifecycle with the real state machine, real ParsedSpec and real child tracking. Starts
// here fail at their first step (PGDATA's parent does not exist), a real failure path; full
// starts are covered by the e2e tests against the compiled binary.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decode } from "../../../src/api/decode.ts";
import { parseSpec } from "../../../src/api/parsed-spec.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { parseCli } from "../../../src/cli.ts";
import { Children } from "../../../src/compute/children.ts";
import { Lifecycle } from "../../../src/compute/lifecycle.ts";
import { ComputeState } from "../../../src/compute/state.ts";
import { RemoteExtensions } from "../../../src/extensions/remote.ts";
import { LfcManager } from "../../../src/lfc/manager.ts";
import { createMetrics } from "../../../src/metrics/registry.ts";
import { resolvePgTools } from "../../../src/postgres/tools.ts";
import { Sidecars } from "../../../src/sidecars/sidecars.ts";
import { knobs } from "../../../src/testing-knobs.ts";
import { minimalSpec, TENANT, TIMELINE } from "../api/helpers.ts";

const saved = { ...knobs };
beforeAll(() => {
  knobs.failedExitDelayMs = 200;
  knobs.fastLingerMs = 150;
  knobs.immediateLingerMs = 20;
});
afterAll(() => Object.assign(knobs, saved));

const pspec = (overrides: Record<string, unknown> = {}) =>
  parseSpec(decode(ComputeSpec, { ...minimalSpec(), ...overrides }));

function setup(
  spec: ReturnType<typeof pspec> | null = null,
  startMicros?: number,
  extraArgs: string[] = [],
) {
  const parsed = parseCli(
    [
      "-D",
      "/nonexistent-parent/pgdata",
      "-C",
      "postgresql://cloud_admin@127.0.0.1:1/postgres",
      "-c",
      "/unused.json",
      "--compute-id",
      "c1",
      "-b",
      "/usr/lib/postgresql/15/bin/postgres",
      ...extraArgs,
    ],
    {},
  );
  if (parsed.kind !== "run") throw new Error("expected run parameters");
  const metrics = createMetrics();
  const state = new ComputeState(metrics, startMicros);
  const env = {
    params: parsed.params,
    tools: resolvePgTools(parsed.params.pgbin),
    pgVersion: 15,
    state,
    children: new Children(),
    metrics,
    lfc: new LfcManager({ connstr: parsed.params.connstr, metrics, getSpec: () => spec }),
    extensionStatsIntervalSeconds: 3600,
    remote: new RemoteExtensions({
      baseUrl: null,
      pgConfig: "/usr/lib/postgresql/15/bin/pg_config",
      pgMajor: 15,
      metrics,
    }),
    instanceId: null,
    tls: null,
    sidecars: new Sidecars({
      tls: null,
      autoscaling: false,
      pgbouncerPassword: null,
      pgbouncerPort: 6432,
    }),
  };
  return { state, lifecycle: new Lifecycle(env, spec) };
}

describe("an empty compute", () => {
  test("/terminate ends it with exit 0 after the linger, and a repeat answers already-terminated", async () => {
    const { state, lifecycle } = setup();
    const t0 = performance.now();
    const exit = lifecycle.run();
    await Bun.sleep(5);
    expect(state.status).toBe("empty");
    expect(await lifecycle.terminate("fast")).toEqual({ kind: "terminated", lsn: null });
    expect(state.status).toBe("terminated");
    expect(await exit).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(knobs.fastLingerMs);
    expect(await lifecycle.terminate("immediate")).toEqual({
      kind: "already-terminated",
      lsn: null,
    });
  });

  test("/configure records the wait, resets start_time, and reports a failed start", async () => {
    const start = Math.floor((performance.timeOrigin + performance.now()) * 1000) - 2_000_000;
    const { state, lifecycle } = setup(null, start);
    const exit = lifecycle.run();
    const result = await lifecycle.configure(pspec({ mode: "Replica" }));
    expect(result.kind).toBe("failed");
    expect(state.status).toBe("failed");
    expect(state.error).toStartWith("cannot create data directory /nonexistent-parent/pgdata");
    expect(state.error).toContain("Caused by:");
    expect(state.tenant).toBe(TENANT);
    expect(state.timeline).toBe(TIMELINE);
    expect(state.timings.wait_for_spec_ms).toBeGreaterThanOrEqual(2000);
    expect(state.timings.wait_for_spec_ms).toBeLessThan(10_000);
    expect(state.startTimeMicros).toBeGreaterThan(start + 1_900_000);
    // While the failure window lasts, neither configure nor terminate is accepted.
    expect(await lifecycle.configure(pspec())).toEqual({
      kind: "invalid-status",
      status: "failed",
    });
    expect(await lifecycle.terminate("fast")).toEqual({ kind: "invalid-status", status: "failed" });
    expect(await exit).toBe(1);
  });
});

describe("a compute given a spec at start", () => {
  test("goes init → failed and exits 1 after the failure window", async () => {
    const { state, lifecycle } = setup(pspec({ mode: "Replica" }));
    const seen: string[] = [];
    state.onChange((to) => seen.push(to));
    const t0 = performance.now();
    expect(await lifecycle.run()).toBe(1);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(knobs.failedExitDelayMs - 5);
    expect(seen).toEqual(["init", "failed"]);
    expect(state.timings.wait_for_spec_ms).toBe(0);
  });
});

describe("configuration refresh", () => {
  test("refused in empty with the reference's text; the status stays", () => {
    const { state, lifecycle } = setup();
    expect(lifecycle.requestRefresh()).toEqual({
      ok: false,
      error: "Cannot refresh compute configuration in state Empty",
    });
    expect(state.status).toBe("empty");
  });

  test("accepted in init without a change", () => {
    const { state, lifecycle } = setup(pspec());
    state.set("init");
    expect(lifecycle.requestRefresh()).toEqual({ ok: true });
    expect(state.status).toBe("init");
  });

  test("from failed it becomes refresh_configuration_pending; repeated, it stays there", () => {
    const { state, lifecycle } = setup(pspec());
    state.fail("boom");
    expect(lifecycle.requestRefresh()).toEqual({ ok: true });
    expect(state.status).toBe("refresh_configuration_pending");
    expect(lifecycle.requestRefresh()).toEqual({ ok: true });
    expect(state.status).toBe("refresh_configuration_pending");
  });
});

describe("lakebase mode, an empty compute", () => {
  test("/terminate answers at once, the status stays empty, the forced exit is 0 after 5 s", async () => {
    const { state, lifecycle } = setup(null, undefined, ["--lakebase-mode", "true"]);
    void lifecycle.run();
    const t0 = performance.now();
    expect(await lifecycle.terminate("fast")).toEqual({ kind: "exiting" });
    expect(state.status).toBe("empty");
    expect(await lifecycle.forcedExit).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(4_900);
  }, 10_000);
});
