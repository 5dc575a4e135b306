// postgresql.conf rendering: the reference's `write_postgres_conf`, line for line.
// Rendering is a pure function of its inputs so that the exact text can be
// pinned by hand-written goldens; the file write and the /proc read are separate small effects.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CONF_NAME_RE, isConfValueToken } from "../api/conf-syntax.ts";
import { findSetting, type ParsedSpec } from "../api/parsed-spec.ts";
import {
  type ComputeSpec,
  computeModeType,
  type DatabricksSettings,
  type GenericOption,
  type GenericOptions,
  type PageserverConnectionInfo,
  shardIndex,
  staticModeLsn,
  type TlsConfig,
} from "../api/spec.ts";
import { replaceFile } from "../util/fs-write.ts";
import { TMP_OVERRIDE_FILE } from "./files.ts";

export interface ConfInputs {
  pspec: ParsedSpec;
  /** --privileged-role-name (`neon_superuser` by default). */
  privilegedRoleName: string;
  /** Written as `neon.extension_server_port`: Postgres fetches remote extensions from it. */
  internalHttpPort: number;
  /** compute_ctl_config.tls; it only matters together with the `tls_experimental` feature. */
  tls: TlsConfig | null;
  /** Default process.platform; macOS uses 'C' locales, only Linux looks at overcommit. */
  platform?: NodeJS.Platform;
  /** Contents of /proc/sys/vm/overcommit_memory (see readOvercommitMemory); null = unknown. */
  overcommitMemory?: string | null;
  /** Set in lakebase mode only; connstrPort is the port of --connstr. */
  lakebase?: { connstrPort: number | null } | null;
}

const CONTROL_ESCAPES: Record<string, string> = {
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

/**
 * A string as a postgresql.conf value, always single-quoted: `'` doubled and `\` doubled (as the
 * reference), and control characters written as the backslash escapes Postgres's conf parser
 * decodes (`\n`, `\r`, `\t`, `\b`, `\f`, else 3-digit octal), so no value can end its line.
 * NUL cannot be represented (Postgres strings end there): refused with an error.
 */
export function escapeConfValue(s: string): string {
  if (s.includes("\0")) throw new Error("a NUL character cannot be written to postgresql.conf");
  const body = s
    .replaceAll("'", "''")
    .replaceAll("\\", "\\\\")
    .replace(/[\x01-\x1f]/g, (c) => {
      return CONTROL_ESCAPES[c] ?? `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`;
    });
  return `'${body}'`;
}

/**
 * One spec setting as a postgresql.conf line (`to_pg_setting`): `name = '<escaped>'` for vartype
 * `string`; for any other vartype the value is conf syntax and written raw, as the reference
 * does, when it is a single token of the conf grammar (`64MB`, `on`, `'a quoted literal'`);
 * anything else is quoted like a string, so it cannot add a line or a comment (the reference
 * writes it raw). A null value gives null: the reference writes the bare name, which Postgres
 * rejects as a syntax error, so such a setting is skipped. Names must match CONF_NAME_RE (the
 * spec decoder refuses others); this throws rather than write a broken line.
 */
export function settingLine(opt: GenericOption): string | null {
  if (!CONF_NAME_RE.test(opt.name)) {
    throw new Error(`invalid configuration parameter name ${JSON.stringify(opt.name)}`);
  }
  if (opt.value === null) return null;
  if (opt.vartype === "string" || !isConfValueToken(opt.value)) {
    return `${opt.name} = ${escapeConfValue(opt.value)}`;
  }
  return `${opt.name} = ${opt.value}`;
}

/** The managed-settings body (`as_pg_settings`): each line then "\n"; `[]` gives one "\n". */
function settingsBody(settings: GenericOption[]): string {
  const lines = settings.map(settingLine).filter((l): l is string => l !== null);
  return `${lines.join("\n")}\n`;
}

/** TLS lines and key/cert copies happen only with the feature flag AND a TLS config. */
export function tlsEnabled(inputs: Pick<ConfInputs, "pspec" | "tls">): boolean {
  return inputs.tls !== null && inputs.pspec.spec.features.includes("tls_experimental");
}

function storageLines(spec: ComputeSpec, out: string[]): void {
  const info: PageserverConnectionInfo | null = spec.pageserver_connection_info;
  if (info === null) {
    // Legacy fields, rendered from the spec as given (not from the derived ParsedSpec info).
    // The stripe size must come before the connstring.
    if (spec.shard_stripe_size !== null) {
      out.push("# from compute spec's shard_stripe_size field");
      out.push(`neon.stripe_size=${spec.shard_stripe_size}`);
    }
    if (spec.pageserver_connstring !== null) {
      out.push("# from compute spec's pageserver_connstring field");
      out.push(`neon.pageserver_connstring=${escapeConfValue(spec.pageserver_connstring)}`);
    }
    return;
  }
  if (info.stripe_size !== null) {
    out.push("# from compute spec's pageserver_connection_info.stripe_size field");
    out.push(`neon.stripe_size=${info.stripe_size}`);
  }
  // shard_count 0 means unsharded: one shard keyed 0000.
  const count = info.shard_count === 0 ? 1 : info.shard_count;
  let urls: string[] | null = [];
  for (let n = 0; n < count; n++) {
    const key = shardIndex(n, info.shard_count);
    const shard = info.shards[key];
    if (shard === undefined) {
      throw new Error(`shard ${key} missing from pageserver_connection_info shard map`);
    }
    const first = shard.pageservers[0];
    // The reference panics here; an error keeps the process alive to report it.
    if (first === undefined) {
      throw new Error(`shard ${key} has no pageservers in pageserver_connection_info`);
    }
    // All shards need a libpq URL, or no connstring is written at all.
    if (first.libpq_url === null) urls = null;
    else urls?.push(first.libpq_url);
  }
  if (urls === null) {
    out.push("# no neon.pageserver_connstring");
  } else {
    out.push("# derived from compute spec's pageserver_connection_info field");
    out.push(`neon.pageserver_connstring=${escapeConfValue(urls.join(","))}`);
  }
}

/** shared_preload_libraries for the audit blocks: the spec's value plus what is missing. */
function auditPreloadLine(settings: GenericOptions, required: string[], fallback: string): string {
  const libs = findSetting(settings, "shared_preload_libraries");
  if (libs === null) return `shared_preload_libraries='${fallback}'`;
  // A substring test, as in the reference: "pgauditlogtofile" also satisfies "pgaudit".
  const extra = required.filter((lib) => !libs.includes(lib)).map((lib) => `,${lib}`);
  // Escaped: the reference pastes the value inside the quotes as it is, so a quote in it ends the
  // string and a newline adds a line.
  return `shared_preload_libraries=${escapeConfValue(libs + extra.join(""))}`;
}

function auditLines(spec: ComputeSpec, out: string[]): void {
  const level = spec.audit_log_level;
  const settings = spec.cluster.settings;
  switch (level) {
    case "Disabled":
      return;
    case "Log":
    case "Base":
      out.push("# Managed by compute_ctl base audit settings: start");
      out.push("pgaudit.log='ddl,role'");
      out.push("pgaudit.log_catalog=off");
      out.push(auditPreloadLine(settings, ["pgaudit"], "neon,pgaudit"));
      out.push("# Managed by compute_ctl base audit settings: end");
      return;
    case "Hipaa":
    case "Extended":
    case "Full":
      out.push("# Managed by compute_ctl compliance audit settings: begin");
      if (level === "Full") {
        out.push("pgaudit.log_parameter=on");
        out.push("pgaudit.log='all'");
      } else {
        out.push("pgaudit.log_parameter=off");
        out.push("pgaudit.log='all, -misc'");
      }
      out.push("pgaudit.log_catalog=off");
      out.push("pgaudit.log_rotation_age=5");
      out.push(
        auditPreloadLine(
          settings,
          ["pgaudit", "pgauditlogtofile"],
          "neon,pgaudit,pgauditlogtofile",
        ),
      );
      out.push("# Managed by compute_ctl compliance audit settings: end");
      return;
  }
}

/** The Databricks GUCs (`DatabricksSettings::as_pg_settings`); escaped here, pasted in there. */
function databricksBody(settings: DatabricksSettings): string {
  return [
    `ssl_ca_file = ${escapeConfValue(settings.pg_compute_tls_settings.ca_file)}`,
    `databricks.workspace_url = ${escapeConfValue(settings.databricks_workspace_host)}`,
    "databricks.enable_databricks_identity_login = true",
    "databricks.enable_sql_restrictions = true",
  ]
    .map((l) => `${l}\n`)
    .join("");
}

/** The full text of postgresql.conf. Every entry of `out` becomes one line ending in "\n". */
export function renderPostgresConf(inputs: ConfInputs): string {
  const spec = inputs.pspec.spec;
  const platform = inputs.platform ?? process.platform;
  const out: string[] = [];

  // The control plane's (or neon_local's) own conf text comes first so that everything below
  // overrides it.
  if (spec.cluster.postgresql_conf !== null) out.push(spec.cluster.postgresql_conf);

  out.push("# Neon storage settings");
  out.push("");
  storageLines(spec, out);

  // Only the spec field: a safekeeper list in cluster.settings is already in the settings block.
  if (spec.safekeeper_connstrings.length > 0) {
    const gen = spec.safekeepers_generation === null ? "" : `g#${spec.safekeepers_generation}:`;
    out.push(`neon.safekeepers=${escapeConfValue(gen + spec.safekeeper_connstrings.join(","))}`);
  }
  if (spec.tenant_id !== null) out.push(`neon.tenant_id=${escapeConfValue(spec.tenant_id)}`);
  if (spec.timeline_id !== null) out.push(`neon.timeline_id=${escapeConfValue(spec.timeline_id)}`);
  if (spec.project_id !== null) out.push(`neon.project_id=${escapeConfValue(spec.project_id)}`);
  if (spec.branch_id !== null) out.push(`neon.branch_id=${escapeConfValue(spec.branch_id)}`);
  if (spec.endpoint_id !== null) out.push(`neon.endpoint_id=${escapeConfValue(spec.endpoint_id)}`);

  if (tlsEnabled(inputs)) {
    // The key and cert are copied into PGDATA under these names (Postgres wants a 0600 key).
    out.push("ssl = on");
    out.push("ssl_cert_file = 'server.crt'");
    out.push("ssl_key_file = 'server.key'");
  }

  const locale = platform === "darwin" ? "C" : "C.UTF-8";
  for (const guc of ["lc_messages", "lc_monetary", "lc_time", "lc_numeric"]) {
    out.push(`${guc}='${locale}'`);
  }

  out.push(`neon.compute_mode=${computeModeType(spec.mode)}`);
  const lsn = staticModeLsn(spec.mode);
  if (lsn !== null) {
    out.push("hot_standby=on");
    out.push(`recovery_target_lsn='${lsn}'`);
  } else if (spec.mode === "Replica") {
    out.push("hot_standby=on");
  }

  // Overcommit disabled means the control plane gave the VM swap; POSIX shared memory in /dev/shm
  // could then fail late, so dynamic shared memory goes to mmap'd files.
  if (platform === "linux" && inputs.overcommitMemory?.trim() === "2") {
    out.push("dynamic_shared_memory_type = mmap");
  }

  out.push(`neon.privileged_role_name=${escapeConfValue(inputs.privilegedRoleName)}`);

  // None writes nothing; [] writes the markers around one empty line.
  const settings = spec.cluster.settings;
  if (settings !== null) {
    out.push("# Managed by compute_ctl: begin");
    out.push(settingsBody(settings).slice(0, -1));
    out.push("# Managed by compute_ctl: end");
  }

  // After the settings, so the spec cannot turn auditing down.
  auditLines(spec, out);

  out.push(`neon.extension_server_port=${inputs.internalHttpPort}`);
  out.push(`neon.disable_logical_replication_subscribers=${spec.drop_subscriptions_before_start}`);

  // rsyslog forwards Postgres's logs to the customer's collector.
  if (spec.logs_export_host !== null) out.push("log_destination='stderr,syslog'");

  if (inputs.lakebase) {
    const port = inputs.lakebase.connstrPort;
    // The reference panics here ("port must be present in connstr").
    if (port === null) throw new Error("lakebase mode: port must be present in connstr");
    out.push(`port = ${port}`);
    out.push("# Databricks settings start");
    // The body ends in "\n" and gets another one, so an empty line precedes the end marker.
    if (spec.databricks_settings !== null) out.push(databricksBody(spec.databricks_settings));
    out.push("# Databricks settings end");
  }

  // Last, so that the temporary override beats every line above.
  out.push(`include_if_exists = '${TMP_OVERRIDE_FILE}'`);

  return out.map((l) => `${l}\n`).join("");
}

/** Writes the rendered text as `<pgdata>/postgresql.conf`, replacing the old file whole (never cut short by a full disk). */
export async function writePostgresConf(pgdata: string, inputs: ConfInputs): Promise<void> {
  const text = renderPostgresConf(inputs);
  await replaceFile(join(pgdata, "postgresql.conf"), text);
}

/** /proc/sys/vm/overcommit_memory, or null off Linux or when it cannot be read. */
export async function readOvercommitMemory(): Promise<string | null> {
  if (process.platform !== "linux") return null;
  try {
    return await readFile("/proc/sys/vm/overcommit_memory", "utf8");
  } catch {
    return null;
  }
}
