import { describe, expect, test } from "bun:test";
import { decode, parseJson } from "../../../src/api/decode.ts";
import {
  ComputeSpec,
  computeModeType,
  KNOWN_COMPUTE_FEATURES,
  staticModeLsn,
} from "../../../src/api/spec.ts";
import { fixtureText, type Json, minimalSpec, schemaError } from "./helpers.ts";

const spec = (doc: Json) => decode(ComputeSpec, doc);
const problem = (doc: Json) => schemaError(() => decode(ComputeSpec, doc)).message;

describe("ComputeSpec fixtures", () => {
  test("compute_api_cluster_spec.json decodes, with the reference's defaults", async () => {
    const text = await fixtureText("compute_api_cluster_spec.json");
    const raw = JSON.parse(text);
    const s = parseJson(ComputeSpec, text);
    expect(s.format_version).toBe(raw.format_version);
    expect(s.operation_uuid).toBe(raw.operation_uuid);
    expect(s.suspend_timeout_seconds).toBe(raw.suspend_timeout_seconds);
    expect(s.features).toEqual([]);
    expect(s.reconfigure_concurrency).toBe(1);
    expect(s.mode).toBe("Primary");
    expect(s.audit_log_level).toBe("Disabled");
    expect(s.skip_pg_catalog_updates).toBe(false);
    expect(s.safekeeper_connstrings).toEqual([]);
    expect(s.cluster.roles.map((r) => r.name)).toEqual(raw.cluster.roles.map((r: Json) => r.name));
    expect(s.cluster.databases.map((d) => [d.name, d.owner])).toEqual(
      raw.cluster.databases.map((d: Json) => [d.name, d.owner]),
    );
    expect(s.cluster.settings).toEqual(raw.cluster.settings);
    expect(s.delta_operations?.map((d) => d.action)).toEqual(
      raw.delta_operations.map((d: Json) => d.action),
    );
    expect(s.remote_extensions?.library_index).toEqual(raw.remote_extensions.library_index);
    // pgbouncer_settings keeps the document's key order (an IndexMap in the reference).
    expect(Object.entries(s.pgbouncer_settings ?? {})).toEqual(
      Object.entries(raw.pgbouncer_settings),
    );
    // `timestamp` is not part of the spec and is dropped.
    expect("timestamp" in s).toBe(false);
  });

  test("compute_tools_cluster_spec.json decodes (its duplicate is a ParsedSpec matter)", async () => {
    const s = parseJson(ComputeSpec, await fixtureText("compute_tools_cluster_spec.json"));
    expect(s.cluster.settings?.some((o) => o.name === "neon.safekeepers")).toBe(true);
  });
});

describe("ComputeSpec presence rules", () => {
  test("the minimal spec decodes and absent Option fields become null", () => {
    const s = spec(minimalSpec());
    expect(s.tenant_id).toBe(minimalSpec().tenant_id);
    expect(s.operation_uuid).toBeNull();
    expect(s.pageserver_connection_info).toBeNull();
    expect(s.cluster.settings).toBeNull();
    expect(s.offload_lfc_interval_seconds).toBeNull();
    expect(s.autoprewarm).toBe(false);
    expect(s.drop_subscriptions_before_start).toBe(false);
  });

  test("required fields are reported missing with their path", () => {
    for (const field of ["format_version", "cluster", "suspend_timeout_seconds"]) {
      const doc = minimalSpec();
      delete doc[field];
      expect(problem(doc)).toBe(`${field}: missing field`);
    }
  });

  test("format_version accepts 1 and 1.0 but not a string", () => {
    const { format_version: _, ...rest } = minimalSpec();
    expect(
      parseJson(ComputeSpec, JSON.stringify(rest).replace(/^\{/, '{"format_version":1,'))
        .format_version,
    ).toBe(1);
    const text = JSON.stringify({ ...minimalSpec(), format_version: 0 }).replace(
      '"format_version":0',
      '"format_version":1.0',
    );
    expect(parseJson(ComputeSpec, text).format_version).toBe(1);
    expect(problem({ ...minimalSpec(), format_version: "1.0" })).toBe(
      'format_version: expected a number, got "1.0"',
    );
  });

  test("explicit null for a #[serde(default)] field is rejected", () => {
    expect(problem({ ...minimalSpec(), autoprewarm: null })).toBe(
      "autoprewarm: expected a boolean, got null",
    );
    expect(problem({ ...minimalSpec(), safekeeper_connstrings: null })).toBe(
      "safekeeper_connstrings: expected an array, got null",
    );
    expect(problem({ ...minimalSpec(), mode: null })).toBe(
      'mode: expected "Primary", "Replica" or {"Static": LSN}, got null',
    );
    expect(problem({ ...minimalSpec(), reconfigure_concurrency: null })).toBe(
      "reconfigure_concurrency: expected a non-negative integer, got null",
    );
  });

  test("absent #[serde(default)] fields take their defaults", () => {
    const doc = minimalSpec();
    for (const k of [
      "mode",
      "reconfigure_concurrency",
      "skip_pg_catalog_updates",
      "safekeeper_connstrings",
    ])
      delete doc[k];
    const s = spec(doc);
    expect(s.mode).toBe("Primary");
    expect(s.reconfigure_concurrency).toBe(1);
    expect(s.skip_pg_catalog_updates).toBe(false);
    expect(s.safekeeper_connstrings).toEqual([]);
  });

  test("defaults are fresh values, not shared between documents", () => {
    const a = spec(minimalSpec());
    a.features.push("tls_experimental");
    expect(spec(minimalSpec()).features).toEqual([]);
  });

  test("null for an Option field is accepted", () => {
    const s = spec({
      ...minimalSpec(),
      operation_uuid: null,
      tenant_id: null,
      swap_size_bytes: null,
      delta_operations: null,
      pageserver_connection_info: null,
      local_proxy_config: null,
      offload_lfc_interval_seconds: null,
      databricks_settings: null,
      cluster: { roles: [], databases: [], settings: null, postgresql_conf: null, name: null },
    });
    expect(s.tenant_id).toBeNull();
    expect(s.cluster.settings).toBeNull();
  });

  test("unknown fields are ignored at top level and nested, and dropped", () => {
    const doc = minimalSpec();
    doc.unknown_field_123123123 = "hello";
    doc.timestamp = "2021-05-23T18:25:43.511Z";
    doc.cluster.extra = { deep: [1] };
    doc.cluster.roles = [{ name: "r", whatever: 1 }];
    doc.cluster.databases = [{ name: "d", owner: "r", restrict_conn: true, invalid: "garbage" }];
    doc.cluster.settings = [{ name: "fsync", value: "off", vartype: "bool", comment: 1 }];
    doc.delta_operations = [{ action: "delete_db", name: "x", extra: null }];
    doc.pageserver_connection_info = {
      shard_count: 0,
      shards: { "0000": { pageservers: [{ libpq_url: "postgres://ps", port: 1 }], x: 1 } },
      future: true,
    };
    doc.local_proxy_config = { jwks: null, newer: 1 };
    const s = spec(doc);
    expect("unknown_field_123123123" in s).toBe(false);
    expect("extra" in s.cluster).toBe(false);
    expect(s.cluster.roles[0]).toEqual({ name: "r", encrypted_password: null, options: null });
    // restrict_conn / invalid are skip_deserializing: whatever is sent is ignored.
    expect(s.cluster.databases[0]).toEqual({ name: "d", owner: "r", options: null });
    expect(s.cluster.settings?.[0]).toEqual({ name: "fsync", value: "off", vartype: "bool" });
    expect(s.pageserver_connection_info?.shards["0000"]?.pageservers[0]).toEqual({
      id: null,
      libpq_url: "postgres://ps",
      grpc_url: null,
    });
  });
});

describe("ComputeSpec integers", () => {
  test("i64 suspend_timeout_seconds rejects fractions and strings", () => {
    expect(problem({ ...minimalSpec(), suspend_timeout_seconds: 1.5 })).toBe(
      "suspend_timeout_seconds: expected an integer, got 1.5",
    );
    expect(problem({ ...minimalSpec(), suspend_timeout_seconds: "60" })).toBe(
      'suspend_timeout_seconds: expected an integer, got "60"',
    );
    expect(spec({ ...minimalSpec(), suspend_timeout_seconds: -1 }).suspend_timeout_seconds).toBe(
      -1,
    );
  });

  test("unsigned fields reject negatives, fractions and out-of-range values", () => {
    expect(problem({ ...minimalSpec(), swap_size_bytes: -1 })).toBe(
      "swap_size_bytes: expected a non-negative integer, got -1",
    );
    expect(problem({ ...minimalSpec(), disk_quota_bytes: 2.5 })).toBe(
      "disk_quota_bytes: expected a non-negative integer, got 2.5",
    );
    expect(problem({ ...minimalSpec(), shard_stripe_size: 4294967296 })).toBe(
      "shard_stripe_size: expected an integer between 0 and 4294967295, got 4294967296",
    );
    expect(problem({ ...minimalSpec(), safekeepers_generation: -3 })).toBe(
      "safekeepers_generation: expected an integer between 0 and 4294967295, got -3",
    );
    expect(problem({ ...minimalSpec(), reconfigure_concurrency: "2" })).toBe(
      'reconfigure_concurrency: expected a non-negative integer, got "2"',
    );
    const s = spec({ ...minimalSpec(), shard_stripe_size: 4294967295, reconfigure_concurrency: 0 });
    expect(s.shard_stripe_size).toBe(4294967295);
    expect(s.reconfigure_concurrency).toBe(0);
  });

  test("offload_lfc_interval_seconds is a NonZeroU64", () => {
    expect(problem({ ...minimalSpec(), offload_lfc_interval_seconds: 0 })).toBe(
      "offload_lfc_interval_seconds: expected a non-zero integer, got 0",
    );
    expect(problem({ ...minimalSpec(), offload_lfc_interval_seconds: -5 })).toBe(
      "offload_lfc_interval_seconds: expected a positive integer, got -5",
    );
    expect(
      spec({ ...minimalSpec(), offload_lfc_interval_seconds: 1 }).offload_lfc_interval_seconds,
    ).toBe(1);
  });
});

describe("ComputeSpec ids", () => {
  test("tenant and timeline ids are 32 hex digits, lower-cased", () => {
    const upper = minimalSpec().tenant_id.toUpperCase();
    expect(spec({ ...minimalSpec(), tenant_id: upper }).tenant_id).toBe(upper.toLowerCase());
    expect(problem({ ...minimalSpec(), tenant_id: "" })).toBe(
      'tenant_id: expected a 32-digit hex id, got ""',
    );
    expect(problem({ ...minimalSpec(), timeline_id: `${minimalSpec().timeline_id}0` })).toBe(
      `timeline_id: expected a 32-digit hex id, got "${minimalSpec().timeline_id}0"`,
    );
    expect(problem({ ...minimalSpec(), timeline_id: "z".repeat(32) })).toBe(
      `timeline_id: expected a 32-digit hex id, got "${"z".repeat(32)}"`,
    );
  });
});

describe("ComputeFeature", () => {
  test("known features decode as themselves", () => {
    expect(spec({ ...minimalSpec(), features: [...KNOWN_COMPUTE_FEATURES] }).features).toEqual([
      ...KNOWN_COMPUTE_FEATURES,
    ]);
  });

  test("unknown features decode to unknown_feature, never an error", () => {
    const s = spec({ ...minimalSpec(), features: ["foo_bar_feature", "tls_experimental", "baz"] });
    expect(s.features).toEqual(["unknown_feature", "tls_experimental", "unknown_feature"]);
  });

  test("a feature must still be a string", () => {
    expect(problem({ ...minimalSpec(), features: ["tls_experimental", 7] })).toBe(
      "features[1]: expected a string, got 7",
    );
  });
});

describe("ComputeMode", () => {
  test("Primary, Replica and Static", () => {
    expect(spec({ ...minimalSpec(), mode: "Replica" }).mode).toBe("Replica");
    const s = spec({ ...minimalSpec(), mode: { Static: " 0/0169ad58 " } });
    expect(s.mode).toEqual({ Static: "0/169AD58" });
    expect(staticModeLsn(s.mode)).toBe("0/169AD58");
    expect(computeModeType(s.mode)).toBe("static");
    expect(computeModeType("Primary")).toBe("primary");
    expect(computeModeType("Replica")).toBe("replica");
    expect(staticModeLsn("Replica")).toBeNull();
  });

  test("an unknown variant is rejected", () => {
    expect(problem({ ...minimalSpec(), mode: "Standby" })).toBe(
      'mode: unknown variant "Standby", expected "Primary", "Replica" or {"Static": LSN}',
    );
    expect(problem({ ...minimalSpec(), mode: "primary" })).toBe(
      'mode: unknown variant "primary", expected "Primary", "Replica" or {"Static": LSN}',
    );
    expect(problem({ ...minimalSpec(), mode: { Standby: "0/1" } })).toBe(
      'mode: unknown variant "Standby", expected "Primary", "Replica" or {"Static": LSN}',
    );
  });

  test("Static needs an LSN string", () => {
    expect(problem({ ...minimalSpec(), mode: "Static" })).toBe(
      'mode: expected "Primary", "Replica" or {"Static": LSN}, got "Static"',
    );
    expect(problem({ ...minimalSpec(), mode: { Static: 23 } })).toBe(
      'mode.Static: expected an LSN string "X/Y" with hex halves of at most 8 digits, got 23',
    );
    expect(problem({ ...minimalSpec(), mode: { Static: "0/1G" } })).toBe(
      'mode.Static: expected an LSN string "X/Y" with hex halves of at most 8 digits, got "0/1G"',
    );
    expect(problem({ ...minimalSpec(), mode: { Static: "0/1", Primary: null } })).toBe(
      'mode: expected "Primary", "Replica" or {"Static": LSN}, got an object',
    );
  });
});

describe("ComputeAudit", () => {
  test("the six capitalised levels", () => {
    for (const level of ["Disabled", "Log", "Base", "Hipaa", "Extended", "Full"] as const) {
      expect(spec({ ...minimalSpec(), audit_log_level: level }).audit_log_level).toBe(level);
    }
  });

  test("anything else is rejected", () => {
    expect(problem({ ...minimalSpec(), audit_log_level: "full" })).toBe(
      'audit_log_level: unknown variant "full", expected "Disabled", "Log", "Base", "Hipaa", "Extended" or "Full"',
    );
  });
});

describe("nested types: one rejected document each", () => {
  test("Cluster", () => {
    expect(problem({ ...minimalSpec(), cluster: { roles: [] } })).toBe(
      "cluster.databases: missing field",
    );
    expect(problem({ ...minimalSpec(), cluster: { roles: null, databases: [] } })).toBe(
      "cluster.roles: expected an array, got null",
    );
  });

  test("Role", () => {
    const doc = minimalSpec();
    doc.cluster.roles = [{ name: "ok" }, { encrypted_password: "x" }];
    expect(problem(doc)).toBe("cluster.roles[1].name: missing field");
  });

  test("Database", () => {
    const doc = minimalSpec();
    doc.cluster.databases = [{ name: "db" }];
    expect(problem(doc)).toBe("cluster.databases[0].owner: missing field");
  });

  test("GenericOption", () => {
    const doc = minimalSpec();
    doc.cluster.databases = [
      { name: "db", owner: "o", options: [{ name: "LC_COLLATE", value: "C" }] },
    ];
    expect(problem(doc)).toBe("cluster.databases[0].options[0].vartype: missing field");
    doc.cluster.databases = [];
    doc.cluster.settings = [{ name: "fsync", value: false, vartype: "bool" }];
    expect(problem(doc)).toBe("cluster.settings[0].value: expected a string, got false");
  });

  test("DeltaOp", () => {
    expect(problem({ ...minimalSpec(), delta_operations: [{ name: "x" }] })).toBe(
      "delta_operations[0].action: missing field",
    );
    expect(
      problem({
        ...minimalSpec(),
        delta_operations: [
          { action: "delete_db", name: "a" },
          { action: "rename_role", name: "x" },
        ],
      }),
    ).toBe('delta_operations[1].new_name: missing field (required when action is "rename_role")');
    expect(
      problem({
        ...minimalSpec(),
        delta_operations: [{ action: "rename_db", name: "x", new_name: null }],
      }),
    ).toBe('delta_operations[0].new_name: expected a string when action is "rename_db", got null');
    // Unknown actions are the apply step's business (ignored there), not an error here.
    const s = spec({ ...minimalSpec(), delta_operations: [{ action: "frobnicate", name: "x" }] });
    expect(s.delta_operations).toEqual([{ action: "frobnicate", name: "x", new_name: null }]);
  });

  test("PageserverConnectionInfo", () => {
    const info = (v: Json) => ({ ...minimalSpec(), pageserver_connection_info: v });
    expect(problem(info({ shard_count: 256, shards: {} }))).toBe(
      "pageserver_connection_info.shard_count: expected an integer between 0 and 255, got 256",
    );
    expect(problem(info({ shard_count: 0 }))).toBe(
      "pageserver_connection_info.shards: missing field",
    );
    expect(
      problem(info({ shard_count: 2, stripe_size: 8, shards: { "01": { pageservers: [] } } })),
    ).toBe(
      'pageserver_connection_info.shards: invalid key "01", expected a shard index of 4 hex digits NNCC',
    );
    expect(problem(info({ shard_count: 0, shards: {}, prefer_protocol: "http" }))).toBe(
      'pageserver_connection_info.prefer_protocol: unknown variant "http", expected "libpq" or "grpc"',
    );
    expect(
      problem(info({ shard_count: 0, shards: { "0000": { pageservers: [{ id: "7" }] } } })),
    ).toBe(
      'pageserver_connection_info.shards["0000"].pageservers[0].id: expected a non-negative integer, got "7"',
    );
  });

  test("PageserverConnectionInfo decodes with a default protocol and lower-case keys", () => {
    const s = spec({
      ...minimalSpec(),
      pageserver_connection_info: {
        shard_count: 2,
        stripe_size: 2048,
        shards: {
          "0002": { pageservers: [{ id: 1, libpq_url: "postgres://a", grpc_url: "grpc://a" }] },
          "01AB": { pageservers: [{ id: 2, libpq_url: "postgres://b", grpc_url: null }] },
        },
      },
    });
    expect(s.pageserver_connection_info?.prefer_protocol).toBe("libpq");
    expect(Object.keys(s.pageserver_connection_info?.shards ?? {})).toEqual(["0002", "01ab"]);
  });

  test("RemoteExtSpec", () => {
    expect(
      problem({
        ...minimalSpec(),
        remote_extensions: { public_extensions: null, extension_data: {} },
      }),
    ).toBe("remote_extensions.library_index: missing field");
    expect(
      problem({
        ...minimalSpec(),
        remote_extensions: {
          library_index: {},
          extension_data: {
            postgis: { control_data: { "postgis.control": 1 }, archive_path: "p" },
          },
        },
      }),
    ).toBe(
      'remote_extensions.extension_data.postgis.control_data["postgis.control"]: expected a string, got 1',
    );
  });

  test("LocalProxySpec", () => {
    expect(
      problem({
        ...minimalSpec(),
        local_proxy_config: { jwks: [{ id: "1", jwks_url: "u", provider_name: "p" }] },
      }),
    ).toBe("local_proxy_config.jwks[0].role_names: missing field");
    expect(problem({ ...minimalSpec(), local_proxy_config: { tls: { key_path: "k" } } })).toBe(
      "local_proxy_config.tls.cert_path: missing field",
    );
    const s = spec({ ...minimalSpec(), local_proxy_config: {} });
    expect(s.local_proxy_config).toEqual({ jwks: null, tls: null });
  });

  test("DatabricksSettings", () => {
    const settings = {
      pg_compute_tls_settings: { cert_file: "c", key_file: "k" },
      databricks_pg_hba: "h",
      databricks_pg_ident: "i",
      databricks_workspace_host: "",
    };
    expect(problem({ ...minimalSpec(), databricks_settings: settings })).toBe(
      "databricks_settings.pg_compute_tls_settings.ca_file: missing field",
    );
  });

  test("pgbouncer_settings is a string map", () => {
    expect(problem({ ...minimalSpec(), pgbouncer_settings: { default_pool_size: 42 } })).toBe(
      "pgbouncer_settings.default_pool_size: expected a string, got 42",
    );
  });
});

describe("ComputeSpec: what postgresql.conf cannot hold is refused with its path", () => {
  const withSettings = (settings: Json[]) => ({
    ...minimalSpec(),
    cluster: { ...minimalSpec().cluster, settings },
  });

  test("setting names outside the conf grammar", () => {
    for (const name of ["a\nb", "work mem", "a.b.c", "1abc", "", "x=y", "a'b"]) {
      expect(problem(withSettings([{ name, value: "1", vartype: "integer" }]))).toBe(
        `cluster.settings[0].name: ${JSON.stringify(name)} is not a valid configuration parameter name`,
      );
    }
    for (const name of ["work_mem", "neon.tenant_id", "_x9", "é.ü"]) {
      expect(
        spec(withSettings([{ name, value: "1", vartype: "integer" }])).cluster.settings,
      ).toEqual([{ name, value: "1", vartype: "integer" }]);
    }
  });

  test("a NUL anywhere that is rendered into the file", () => {
    const nul = "contains a NUL character, which a postgresql.conf value cannot hold";
    expect(problem(withSettings([{ name: "a.b", value: "x\0", vartype: "string" }]))).toBe(
      `cluster.settings[0].value: ${nul}`,
    );
    expect(problem({ ...minimalSpec(), endpoint_id: "e\0" })).toBe(`endpoint_id: ${nul}`);
    expect(problem({ ...minimalSpec(), safekeeper_connstrings: ["a", "b\0"] })).toBe(
      `safekeeper_connstrings[1]: ${nul}`,
    );
    expect(problem({ ...minimalSpec(), pageserver_connstring: "\0" })).toBe(
      `pageserver_connstring: ${nul}`,
    );
    const info = {
      shard_count: 0,
      shards: { "0000": { pageservers: [{ libpq_url: "postgres://x\0" }] } },
    };
    expect(problem({ ...minimalSpec(), pageserver_connection_info: info })).toBe(
      `pageserver_connection_info.shards["0000"].pageservers[0].libpq_url: ${nul}`,
    );
    // Newlines and quotes are fine: they are escaped when the file is rendered.
    expect(spec({ ...minimalSpec(), endpoint_id: "e\n'" }).endpoint_id).toBe("e\n'");
  });
});

describe("ComputeSpec integers beyond 2^53: the exact Rust range decides", () => {
  // Literals are spliced into the text: a JS number cannot hold them.
  const text = (field: string, literal: string) => {
    const doc = minimalSpec();
    delete doc[field];
    return JSON.stringify(doc).replace(/^\{/, `{"${field}":${literal},`);
  };
  const parsed = (field: string, literal: string) => parseJson(ComputeSpec, text(field, literal));
  const refused = (field: string, literal: string) =>
    schemaError(() => parsed(field, literal)).message;

  test("u64 (usize) fields: 2^64 refused, 2^64-1 accepted", () => {
    for (const field of ["reconfigure_concurrency", "swap_size_bytes", "disk_quota_bytes"]) {
      expect(refused(field, "18446744073709551616")).toBe(
        `${field}: expected a non-negative integer, got 18446744073709551616`,
      );
      expect(refused(field, "-1")).toContain(`${field}: expected a non-negative integer`);
      expect((parsed(field, "18446744073709551615") as Json)[field]).toBe(2 ** 64);
      expect((parsed(field, "9007199254740993") as Json)[field]).toBe(2 ** 53);
    }
  });

  test("NonZeroU64 offload_lfc_interval_seconds", () => {
    expect(refused("offload_lfc_interval_seconds", "18446744073709551616")).toBe(
      "offload_lfc_interval_seconds: expected a positive integer, got 18446744073709551616",
    );
    expect(
      parsed("offload_lfc_interval_seconds", "18446744073709551615").offload_lfc_interval_seconds,
    ).toBe(2 ** 64);
  });

  test("i64 suspend_timeout_seconds: 2^63 and -2^63-1 refused, the extremes accepted", () => {
    expect(refused("suspend_timeout_seconds", "9223372036854775808")).toBe(
      "suspend_timeout_seconds: expected an integer, got 9223372036854775808",
    );
    expect(refused("suspend_timeout_seconds", "-9223372036854775809")).toBe(
      "suspend_timeout_seconds: expected an integer, got -9223372036854775809",
    );
    expect(parsed("suspend_timeout_seconds", "9223372036854775807").suspend_timeout_seconds).toBe(
      2 ** 63,
    );
    expect(parsed("suspend_timeout_seconds", "-9223372036854775808").suspend_timeout_seconds).toBe(
      -(2 ** 63),
    );
  });

  test("u32 and u8 fields and the u64 pageserver id", () => {
    expect(refused("safekeepers_generation", "4294967296")).toContain("safekeepers_generation:");
    expect(refused("shard_stripe_size", "18446744073709551616")).toContain("shard_stripe_size:");
    const info = (id: string) =>
      `{"shard_count":0,"shards":{"0000":{"pageservers":[{"id":${id},"libpq_url":"postgres://x"}]}}}`;
    expect(refused("pageserver_connection_info", info("18446744073709551616"))).toBe(
      'pageserver_connection_info.shards["0000"].pageservers[0].id: expected a non-negative integer, got 18446744073709551616',
    );
    expect(
      parsed("pageserver_connection_info", info("18446744073709551615")).pageserver_connection_info
        ?.shards["0000"]?.pageservers[0]?.id,
    ).toBe(2 ** 64);
    expect(refused("pageserver_connection_info", info("1e30"))).toContain(
      "expected a non-negative integer",
    );
  });
});
