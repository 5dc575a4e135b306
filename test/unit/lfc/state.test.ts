import { expect, test } from "bun:test";
import type { ParsedSpec } from "../../../src/api/parsed-spec.ts";
import { storageTarget } from "../../../src/lfc/endpoint-storage.ts";
import {
  type LfcPrewarmState,
  periodicOffloadAllowed,
  prewarmSettled,
} from "../../../src/lfc/state.ts";

const completed: LfcPrewarmState = {
  status: "completed",
  total: 1,
  prewarmed: 1,
  skipped: 0,
  state_download_time_ms: 0,
  uncompress_time_ms: 0,
  prewarm_time_ms: 0,
};

test("THE RULE as a table: periodic offload only after completed, skipped or no prewarm", () => {
  const table: [LfcPrewarmState, boolean][] = [
    [{ status: "not_prewarmed" }, true],
    [{ status: "prewarming" }, false],
    [completed, true],
    [{ status: "failed", error: "x" }, false],
    [{ status: "skipped" }, true],
    [{ status: "cancelled" }, false],
  ];
  for (const [state, allowed] of table)
    expect([state.status, periodicOffloadAllowed(state)]).toEqual([state.status, allowed]);
});

test("only prewarming is unsettled", () => {
  expect(prewarmSettled({ status: "prewarming" })).toBe(false);
  expect(prewarmSettled({ status: "cancelled" })).toBe(true);
});

const pspec = (over: Record<string, unknown> = {}, endpoint_id: string | null = "ep-1") =>
  ({
    tenantId: "a".repeat(32),
    timelineId: "b".repeat(32),
    endpointStorageAddr: "storage:51243",
    endpointStorageToken: "t0k",
    spec: { endpoint_id },
    ...over,
  }) as unknown as ParsedSpec;

test("the URL: http, host:port, tenant, timeline, endpoint (or from_endpoint, verbatim), lfc_state", () => {
  expect(storageTarget(pspec())).toEqual({
    url: `http://storage:51243/${"a".repeat(32)}/${"b".repeat(32)}/ep-1/lfc_state`,
    token: "t0k",
  });
  expect(storageTarget(pspec(), "ep 2/x").url).toEndWith("/ep 2/x/lfc_state");
  // from_endpoint also works when the spec has no endpoint id.
  expect(storageTarget(pspec({}, null), "ep-3").url).toEndWith("/ep-3/lfc_state");
  // An empty token is still a token (opaque to compute_ctl).
  expect(storageTarget(pspec({ endpointStorageToken: "" })).token).toBe("");
});

test("missing pieces are reported in the reference's order and words", () => {
  expect(() => storageTarget(null)).toThrow("compute spec missing");
  expect(() =>
    storageTarget(pspec({ endpointStorageAddr: null, endpointStorageToken: null }, null)),
  ).toThrow("pspec.endpoint_id missing, other endpoint_id not provided");
  expect(() =>
    storageTarget(pspec({ endpointStorageAddr: null, endpointStorageToken: null })),
  ).toThrow("pspec.endpoint_storage_addr missing");
  expect(() => storageTarget(pspec({ endpointStorageToken: null }))).toThrow(
    "pspec.endpoint_storage_token missing",
  );
});
