import { describe, expect, test } from "bun:test";
import { COMPUTE_STATUSES, displayStatus } from "../../../src/api/status.ts";
import { ComputeState, canTransition, IllegalTransitionError } from "../../../src/compute/state.ts";
import { createMetrics } from "../../../src/metrics/registry.ts";

async function upSeries(metrics: ReturnType<typeof createMetrics>) {
  const m = await metrics.up.get();
  return m.values.map((v) => ({ labels: v.labels, value: v.value }));
}

describe("compute status spelling", () => {
  test("Display form is kebab-case of the snake_case wire form", () => {
    expect(displayStatus("termination_pending_fast")).toBe("termination-pending-fast");
    expect(displayStatus("configuration_pending")).toBe("configuration-pending");
    expect(displayStatus("refresh_configuration_pending")).toBe("refresh-configuration-pending");
    expect(displayStatus("running")).toBe("running");
  });

  test("every reference status exists", () => {
    expect([...COMPUTE_STATUSES].sort() as string[]).toEqual(
      [
        "configuration",
        "configuration_pending",
        "empty",
        "failed",
        "init",
        "refresh_configuration",
        "refresh_configuration_pending",
        "running",
        "terminated",
        "termination_pending_fast",
        "termination_pending_immediate",
      ].sort(),
    );
  });
});

describe("transitions", () => {
  test("the reference's paths are allowed", () => {
    const paths: [string, string][] = [
      ["empty", "configuration_pending"],
      ["configuration_pending", "init"],
      ["init", "running"],
      ["init", "failed"],
      ["empty", "init"],
      ["running", "configuration_pending"],
      ["configuration_pending", "configuration"],
      ["configuration", "running"],
      ["configuration", "failed"],
      ["running", "termination_pending_fast"],
      ["empty", "termination_pending_immediate"],
      ["termination_pending_fast", "terminated"],
      ["termination_pending_immediate", "terminated"],
      ["running", "refresh_configuration_pending"],
      ["refresh_configuration_pending", "refresh_configuration"],
      ["refresh_configuration", "running"],
    ];
    for (const [from, to] of paths) {
      expect(`${from}->${to}:${canTransition(from as never, to as never)}`).toBe(
        `${from}->${to}:true`,
      );
    }
  });

  test("nothing reaches running without init or a configuration", () => {
    for (const from of COMPUTE_STATUSES) {
      const ok = canTransition(from, "running");
      expect(`${from}:${ok}`).toBe(
        `${from}:${["init", "configuration", "refresh_configuration"].includes(from)}`,
      );
    }
  });

  test("terminated is final and illegal moves throw", () => {
    const state = new ComputeState(createMetrics());
    expect(() => state.set("running")).toThrow(IllegalTransitionError);
    expect(() => state.set("running")).toThrow(
      "illegal compute status transition from empty to running",
    );
    state.set("termination_pending_fast");
    state.set("terminated");
    for (const to of COMPUTE_STATUSES) expect(canTransition("terminated", to)).toBe(false);
    expect(state.status).toBe("terminated");
  });
});

describe("ComputeState", () => {
  test("waitFor resolves on the transition, and at once when already there", async () => {
    const state = new ComputeState(createMetrics());
    const order: string[] = [];
    const waiting = state.waitFor(["running", "failed"]).then((s) => order.push(`woke:${s}`));
    state.set("init");
    await Bun.sleep(1);
    expect(order).toEqual([]);
    state.fail("boom");
    await waiting;
    expect(order).toEqual(["woke:failed"]);
    expect(state.error).toBe("boom");
    expect(await state.waitFor(["failed"])).toBe("failed");
  });

  test("compute_ctl_up has exactly one series at 1, labelled with the Display status", async () => {
    const metrics = createMetrics();
    const state = new ComputeState(metrics);
    expect(await upSeries(metrics)).toEqual([
      { labels: { build_tag: "latest", status: "empty" }, value: 1 },
    ]);
    state.set("termination_pending_immediate");
    expect(await upSeries(metrics)).toEqual([
      { labels: { build_tag: "latest", status: "termination-pending-immediate" }, value: 1 },
    ]);
    state.set("terminated");
    expect(await upSeries(metrics)).toEqual([
      { labels: { build_tag: "latest", status: "terminated" }, value: 1 },
    ]);
  });

  test("whenNotApplying waits out a pending or running apply, and a refresh's apply", async () => {
    const state = new ComputeState(createMetrics());
    state.set("init");
    expect(await state.whenNotApplying()).toBe("init");
    state.set("running");
    state.set("configuration_pending");
    const woke: string[] = [];
    const waiting = state.whenNotApplying().then((s) => woke.push(s));
    state.set("configuration");
    await Bun.sleep(1);
    expect(woke).toEqual([]);
    state.set("running");
    await waiting;
    expect(woke).toEqual(["running"]);
    // Waiting for the configuration to be read again is not an apply; reading it applied is.
    state.set("refresh_configuration_pending");
    expect(await state.whenNotApplying()).toBe("refresh_configuration_pending");
    state.set("refresh_configuration");
    const refresh = state.whenNotApplying();
    state.fail("boom");
    expect(await refresh).toBe("failed");
  });

  test("onChange listeners see every move", () => {
    const state = new ComputeState(createMetrics());
    const seen: string[] = [];
    const off = state.onChange((to, from) => seen.push(`${from}>${to}`));
    state.set("configuration_pending");
    state.set("init");
    off();
    state.set("running");
    expect(seen).toEqual(["empty>configuration_pending", "configuration_pending>init"]);
  });
});
