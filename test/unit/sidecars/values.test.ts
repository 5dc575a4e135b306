import { describe, expect, test } from "bun:test";
import { decode } from "../../../src/api/decode.ts";
import { parseSpec } from "../../../src/api/parsed-spec.ts";
import { sidecarValueProblem } from "../../../src/api/sidecar-values.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";

const base = {
  format_version: 1,
  cluster: { roles: [], databases: [] },
  tenant_id: "b0554b632bd4d547a63b86c3630317e8",
  timeline_id: "2414a61ffc94e428f14b5758fe308e13",
  pageserver_connstring: "postgres://no_user@localhost:64000",
  safekeeper_connstrings: ["localhost:5454"],
  suspend_timeout_seconds: -1,
};

const spec = (extra: Record<string, unknown>): ComputeSpec =>
  decode(ComputeSpec, { ...base, ...extra });

describe("sidecar values", () => {
  test("plain values pass", () => {
    expect(
      sidecarValueProblem(
        spec({
          pgbouncer_settings: { default_pool_size: "17", server_tls_ciphers: "a:b" },
          logs_export_host: "collector:514",
          audit_log_level: "Hipaa",
          endpoint_id: "ep-1",
          project_id: "p-1",
        }),
      ),
    ).toBeNull();
  });

  test("a newline anywhere that reaches a file is refused by parseSpec", () => {
    for (const extra of [
      { pgbouncer_settings: { default_pool_size: "17\nadmin_users=x" } },
      { pgbouncer_settings: { "a\nb": "1" } },
      { logs_export_host: "collector:514\n*.* /tmp/x" },
      { audit_log_level: "Full", endpoint_id: "ep\r\n" },
      { audit_log_level: "Extended", project_id: "p\n" },
    ]) {
      expect(() => parseSpec(spec(extra))).toThrow();
    }
  });

  test("ids with quotes or backslashes are escaped into the audit file, not refused", () => {
    expect(
      sidecarValueProblem(spec({ audit_log_level: "Full", project_id: 'p"\\', endpoint_id: "e'" })),
    ).toBeNull();
  });

  test("ids only matter when the audit export renders them", () => {
    expect(sidecarValueProblem(spec({ audit_log_level: "Base", endpoint_id: 'ep"' }))).toBeNull();
  });
});
