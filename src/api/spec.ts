// ComputeSpec and everything inside it, as the reference (libs/compute_api/src/spec.rs) reads it.
// Field names, order and enum spellings follow the reference. Decode with `decode()` from
// ./decode.ts: it applies the defaults, normalises ids and reports one-line errors.
//
// Presence conventions, mirrored in how each field is declared:
// - `Option<T>` → `option(T)`: absent or null on input; decoded as null when absent.
// - `#[serde(default)]` non-Option → `defaulted(T, d)`: absent gives `d`, but null is rejected.
// - everything else is required.
// Every property is listed as required in the JSON Schema because a decoded document always
// has it; the `default` keyword says which ones the input may leave out.
import { CloneType, type Static, Type as T, type TSchema } from "@sinclair/typebox";
import { CONF_NAME_RE, confValueProblem } from "./conf-syntax.ts";
import { LSN_PATTERN } from "./lsn.ts";

/** Custom schema keywords understood by `decode()` (legal OpenAPI `x-` extensions). */
export const X_EXPECTED = "x-expected";
export const X_NORMALIZE = "x-normalize";
export const X_KEY_EXPECTED = "x-key-expected";
export const X_NORMALIZE_KEYS = "x-normalize-keys";
export const X_REQUIRED_IF = "x-required-if";
/**
 * A check of a decoded object beyond its shape (a symbol, so it stays out of the JSON Schema):
 * returns the first problem, with a path relative to the object, or null.
 */
export const X_CHECK: unique symbol = Symbol("x-check");
/** The exact range of a 64-bit integer type, for literals beyond 2^53 (doubles cannot hold it). */
export const X_EXACT_RANGE: unique symbol = Symbol("x-exact-range");

function exact<S extends TSchema>(schema: S, min: bigint, max: bigint): S {
  (schema as unknown as Record<symbol, unknown>)[X_EXACT_RANGE] = { min, max };
  return schema;
}
export type ObjectCheck = (
  value: Record<string, unknown>,
) => { path: (string | number)[]; problem: string } | null;

/** `Option<T>`: absent or null, decoded as null when absent. */
export function option<S extends TSchema>(schema: S) {
  return T.Union([schema, T.Null()], { default: null });
}

/** `#[serde(default)]` on a non-Option field: absent takes `value`, null is an error. */
export function defaulted<S extends TSchema>(schema: S, value: Static<S>): S {
  return CloneType(schema, { default: value });
}

// Integers are strict (serde): no fractions, no negatives for unsigned types, ranges enforced.
// parseJson checks literals beyond 2^53 against the exact range (2^64 is refused for a u64, 2^64-1
// accepted); the decoded value is then a double, so it loses precision.
const U64_MAX = 2n ** 64n - 1n;
export const U8 = T.Integer({ minimum: 0, maximum: 255 });
export const U32 = T.Integer({ minimum: 0, maximum: 4294967295 });
export const U64 = exact(T.Integer({ minimum: 0, maximum: Number(U64_MAX) }), 0n, U64_MAX);
export const I32 = T.Integer({ minimum: -2147483648, maximum: 2147483647 });
export const I64 = exact(
  T.Integer({ minimum: -Number(2n ** 63n), maximum: Number(2n ** 63n - 1n) }),
  -(2n ** 63n),
  2n ** 63n - 1n,
);
/** NonZeroU64: 0 is a parse error in the reference. */
export const NonZeroU64 = exact(T.Integer({ minimum: 1, maximum: Number(U64_MAX) }), 1n, U64_MAX);
/** A u64 this side only sends (a response field): the published schema states no upper bound. */
export const SentU64 = T.Integer({ minimum: 0 });

/** TenantId / TimelineId: 32 hex digits, either case on input, lower case once decoded. */
export const HexId = T.String({
  pattern: "^[0-9A-Fa-f]{32}$",
  [X_EXPECTED]: "a 32-digit hex id",
  [X_NORMALIZE]: "lowercase",
});

/** An LSN string "X/Y" (a JSON number is rejected); decoded to its canonical upper-case form. */
export const LsnString = T.String({
  pattern: LSN_PATTERN,
  [X_EXPECTED]: 'an LSN string "X/Y" with hex halves of at most 8 digits',
  [X_NORMALIZE]: "lsn",
});

export const GenericOption = T.Object(
  {
    name: T.String(),
    value: option(T.String()),
    vartype: T.String(),
  },
  { $id: "GenericOption" },
);
export type GenericOption = Static<typeof GenericOption>;

/** `Option<Vec<GenericOption>>`: None and `[]` behave differently in the reference. */
export const GenericOptions = option(T.Array(GenericOption));
export type GenericOptions = Static<typeof GenericOptions>;

export const Role = T.Object(
  {
    name: T.String(),
    encrypted_password: option(T.String()),
    options: GenericOptions,
  },
  { $id: "Role" },
);
export type Role = Static<typeof Role>;

// `restrict_conn` and `invalid` are skip_deserializing in the reference: they are not part of the
// input type, so decode drops them like any unknown field.
export const Database = T.Object(
  {
    name: T.String(),
    owner: T.String(),
    options: GenericOptions,
  },
  { $id: "Database" },
);
export type Database = Static<typeof Database>;

export const Cluster = T.Object(
  {
    cluster_id: option(T.String()),
    name: option(T.String()),
    state: option(T.String()),
    roles: T.Array(Role),
    databases: T.Array(Database),
    postgresql_conf: option(T.String()),
    settings: GenericOptions,
  },
  { $id: "Cluster" },
);
export type Cluster = Static<typeof Cluster>;

/** The reference unwraps `new_name` for these actions; decode rejects a rename without it. */
export const RENAME_ACTIONS = ["rename_role", "rename_db"] as const;

export const DeltaOp = T.Object(
  {
    action: T.String(),
    name: T.String(),
    new_name: option(T.String()),
  },
  { $id: "DeltaOp", [X_REQUIRED_IF]: { new_name: { action: [...RENAME_ACTIONS] } } },
);
export type DeltaOp = Static<typeof DeltaOp>;

export const KNOWN_COMPUTE_FEATURES = [
  "activity_monitor_experimental",
  "tls_experimental",
] as const;
export type ComputeFeature = (typeof KNOWN_COMPUTE_FEATURES)[number] | "unknown_feature";

/** Any string is accepted; strings that name no known feature decode to "unknown_feature". */
export const ComputeFeature = T.Unsafe<ComputeFeature>(
  T.String({
    $id: "ComputeFeature",
    examples: [...KNOWN_COMPUTE_FEATURES],
    [X_NORMALIZE]: { known: [...KNOWN_COMPUTE_FEATURES], fallback: "unknown_feature" },
  }),
);

/** Externally tagged like serde: "Primary", "Replica" or {"Static": "X/Y"}. */
export const ComputeMode = T.Union(
  [
    T.Literal("Primary"),
    T.Literal("Replica"),
    T.Object({ Static: LsnString }, { additionalProperties: false }),
  ],
  { $id: "ComputeMode", [X_EXPECTED]: '"Primary", "Replica" or {"Static": LSN}' },
);
export type ComputeMode = Static<typeof ComputeMode>;

/** `to_type_str`: the `neon.compute_mode` GUC value and the Display form. */
export function computeModeType(mode: ComputeMode): "primary" | "replica" | "static" {
  if (mode === "Primary") return "primary";
  if (mode === "Replica") return "replica";
  return "static";
}

/** The pinned LSN of a Static compute, else null. */
export function staticModeLsn(mode: ComputeMode): string | null {
  return typeof mode === "object" ? mode.Static : null;
}

export const COMPUTE_AUDIT_LEVELS = [
  "Disabled",
  "Log",
  "Base",
  "Hipaa",
  "Extended",
  "Full",
] as const;
export const ComputeAudit = T.Union(
  COMPUTE_AUDIT_LEVELS.map((l) => T.Literal(l)),
  { $id: "ComputeAudit" },
);
export type ComputeAudit = Static<typeof ComputeAudit>;

export const PageserverProtocol = T.Union([T.Literal("libpq"), T.Literal("grpc")], {
  $id: "PageserverProtocol",
});
export type PageserverProtocol = Static<typeof PageserverProtocol>;

export const PageserverShardConnectionInfo = T.Object(
  {
    id: option(U64),
    libpq_url: option(T.String()),
    grpc_url: option(T.String()),
  },
  { $id: "PageserverShardConnectionInfo" },
);
export type PageserverShardConnectionInfo = Static<typeof PageserverShardConnectionInfo>;

export const PageserverShardInfo = T.Object(
  { pageservers: T.Array(PageserverShardConnectionInfo) },
  { $id: "PageserverShardInfo" },
);
export type PageserverShardInfo = Static<typeof PageserverShardInfo>;

/** ShardIndex as a map key: "NNCC", shard number then shard count, 2 hex digits each. */
export const SHARD_INDEX_PATTERN = "^[0-9A-Fa-f]{4}$";

/** The ShardIndex key "NNCC" of shard `number` of `count` (lower-case hex, as the reference). */
export function shardIndex(number: number, count: number): string {
  const hex2 = (n: number) => n.toString(16).padStart(2, "0");
  return `${hex2(number)}${hex2(count)}`;
}

export const PageserverConnectionInfo = T.Object(
  {
    /** 0 for unsharded tenants, 1 for a sharded tenant with one shard. */
    shard_count: U8,
    stripe_size: option(U32),
    shards: T.Record(T.String({ pattern: SHARD_INDEX_PATTERN }), PageserverShardInfo, {
      additionalProperties: false,
      [X_KEY_EXPECTED]: "a shard index of 4 hex digits NNCC",
      [X_NORMALIZE_KEYS]: "lowercase",
    }),
    prefer_protocol: defaulted(PageserverProtocol, "libpq"),
  },
  { $id: "PageserverConnectionInfo" },
);
export type PageserverConnectionInfo = Static<typeof PageserverConnectionInfo>;

export const ExtensionData = T.Object(
  {
    control_data: T.Record(T.String(), T.String()),
    archive_path: T.String(),
  },
  { $id: "ExtensionData" },
);
export type ExtensionData = Static<typeof ExtensionData>;

export const RemoteExtSpec = T.Object(
  {
    public_extensions: option(T.Array(T.String())),
    custom_extensions: option(T.Array(T.String())),
    library_index: T.Record(T.String(), T.String()),
    extension_data: T.Record(T.String(), ExtensionData),
  },
  { $id: "RemoteExtSpec" },
);
export type RemoteExtSpec = Static<typeof RemoteExtSpec>;

export const TlsConfig = T.Object(
  {
    key_path: T.String(),
    cert_path: T.String(),
  },
  { $id: "TlsConfig" },
);
export type TlsConfig = Static<typeof TlsConfig>;

export const JwksSettings = T.Object(
  {
    id: T.String(),
    role_names: T.Array(T.String()),
    jwks_url: T.String(),
    provider_name: T.String(),
    jwt_audience: option(T.String()),
  },
  { $id: "JwksSettings" },
);
export type JwksSettings = Static<typeof JwksSettings>;

// The reference omits None keys of LocalProxySpec when it writes local_proxy's config; decoded
// here they are null, so that writer should drop null keys.
export const LocalProxySpec = T.Object(
  {
    jwks: option(T.Array(JwksSettings)),
    tls: option(TlsConfig),
  },
  { $id: "LocalProxySpec" },
);
export type LocalProxySpec = Static<typeof LocalProxySpec>;

export const PgComputeTlsSettings = T.Object(
  {
    cert_file: T.String(),
    key_file: T.String(),
    ca_file: T.String(),
  },
  { $id: "PgComputeTlsSettings" },
);
export type PgComputeTlsSettings = Static<typeof PgComputeTlsSettings>;

export const DatabricksSettings = T.Object(
  {
    pg_compute_tls_settings: PgComputeTlsSettings,
    databricks_pg_hba: T.String(),
    databricks_pg_ident: T.String(),
    databricks_workspace_host: T.String(),
  },
  { $id: "DatabricksSettings" },
);
export type DatabricksSettings = Static<typeof DatabricksSettings>;

export const ComputeSpec = T.Object(
  {
    /** f32 in the reference: any number; its value is never checked. */
    format_version: T.Number(),
    operation_uuid: option(T.String()),
    features: defaulted(T.Array(ComputeFeature), []),
    swap_size_bytes: option(U64),
    disk_quota_bytes: option(U64),
    disable_lfc_resizing: option(T.Boolean()),
    cluster: Cluster,
    delta_operations: option(T.Array(DeltaOp)),
    skip_pg_catalog_updates: defaulted(T.Boolean(), false),
    tenant_id: option(HexId),
    timeline_id: option(HexId),
    pageserver_connection_info: option(PageserverConnectionInfo),
    /** Legacy: comma-separated libpq connstrings, one per shard. */
    pageserver_connstring: option(T.String()),
    shard_stripe_size: option(U32),
    project_id: option(T.String()),
    branch_id: option(T.String()),
    endpoint_id: option(T.String()),
    safekeepers_generation: option(U32),
    safekeeper_connstrings: defaulted(T.Array(T.String()), []),
    mode: defaulted(ComputeMode, "Primary"),
    storage_auth_token: option(T.String()),
    remote_extensions: option(RemoteExtSpec),
    /** Ordered in the reference (IndexMap); JS keeps insertion order for non-numeric keys. */
    pgbouncer_settings: option(T.Record(T.String(), T.String())),
    local_proxy_config: option(LocalProxySpec),
    /** usize, 1 when absent. */
    reconfigure_concurrency: defaulted(U64, 1),
    drop_subscriptions_before_start: defaulted(T.Boolean(), false),
    audit_log_level: defaulted(ComputeAudit, "Disabled"),
    logs_export_host: option(T.String()),
    endpoint_storage_addr: option(T.String()),
    endpoint_storage_token: option(T.String()),
    autoprewarm: defaulted(T.Boolean(), false),
    offload_lfc_interval_seconds: option(NonZeroU64),
    /** Required, no default (i64). */
    suspend_timeout_seconds: I64,
    databricks_settings: option(DatabricksSettings),
  },
  { $id: "ComputeSpec" },
);
export type ComputeSpec = Static<typeof ComputeSpec>;

/**
 * Every string compute_ctl writes into postgresql.conf must be representable there: setting
 * names must be names of the conf grammar, and no value may hold a NUL. (Quotes, backslashes
 * and newlines are escaped when the file is rendered.)
 */
export function confProblems(
  spec: ComputeSpec,
): { path: (string | number)[]; problem: string } | null {
  const settings = spec.cluster.settings ?? [];
  for (const [i, opt] of settings.entries()) {
    if (!CONF_NAME_RE.test(opt.name)) {
      return {
        path: ["cluster", "settings", i, "name"],
        problem: `${JSON.stringify(opt.name)} is not a valid configuration parameter name`,
      };
    }
  }
  const values: [(string | number)[], string | null][] = [
    ...settings.map((o, i): [(string | number)[], string | null] => [
      ["cluster", "settings", i, "value"],
      o.value,
    ]),
    [["cluster", "postgresql_conf"], spec.cluster.postgresql_conf],
    [["pageserver_connstring"], spec.pageserver_connstring],
    [["project_id"], spec.project_id],
    [["branch_id"], spec.branch_id],
    [["endpoint_id"], spec.endpoint_id],
    ...spec.safekeeper_connstrings.map((s, i): [(string | number)[], string] => [
      ["safekeeper_connstrings", i],
      s,
    ]),
    ...Object.entries(spec.pageserver_connection_info?.shards ?? {}).flatMap(([key, shard]) =>
      shard.pageservers.map((p, j): [(string | number)[], string | null] => [
        ["pageserver_connection_info", "shards", key, "pageservers", j, "libpq_url"],
        p.libpq_url,
      ]),
    ),
    [
      ["databricks_settings", "pg_compute_tls_settings", "ca_file"],
      spec.databricks_settings?.pg_compute_tls_settings.ca_file ?? null,
    ],
    [
      ["databricks_settings", "databricks_workspace_host"],
      spec.databricks_settings?.databricks_workspace_host ?? null,
    ],
  ];
  for (const [path, value] of values) {
    const problem = value === null ? null : confValueProblem(value);
    if (problem !== null) return { path, problem };
  }
  return null;
}
(ComputeSpec as unknown as Record<symbol, ObjectCheck>)[X_CHECK] = (v) =>
  confProblems(v as ComputeSpec);
