// The command line: every flag of the reference compute_ctl (same long names, short forms and
// defaults) plus a few of our own, turned into validated Params.
//
// One table per command (the run, `spec plan`, `vm-monitor`), each scanned by the one argument
// scanner (util/args.ts) with clap's rules and wording. citty's defineCommand carries the run's
// table as its command definition; its own parser is lenient (unknown flags, missing values,
// garbage numbers pass), so it is not used.
import { type ArgsDef, defineCommand } from "citty";
import type { Params } from "./config/params.ts";
import { isPrivilegedRoleName } from "./config/role-name.ts";
import { ConfigError, UsageError } from "./errors.ts";
import type { LogFormat, LogLevelName } from "./log.ts";
import {
  type ArgDef,
  type ArgTable,
  argValue,
  checkGiven,
  type Given,
  invalidValue,
  parseInteger,
  renderOptions,
  scanArgs,
  usageLine,
} from "./util/args.ts";
import { parseLevelFilter } from "./util/log-level.ts";
import { BUILD_TAG, BUILD_TARGET, VERSION } from "./version.ts";

export type CliResult =
  | { kind: "run"; params: Params }
  | { kind: "help"; text: string }
  | { kind: "version"; text: string };

const LOG_LEVELS: LogLevelName[] = ["off", "error", "warn", "info", "debug", "trace"];
const LOG_FORMATS: LogFormat[] = ["text", "json"];

// Keys are the long names. `valueHint` is clap's value name (shown in help and errors).
// Numbers are "string" args with string defaults: citty has no numeric type, and the strict
// scan below parses them.
const args = {
  pgbin: {
    type: "string",
    alias: "b",
    default: "postgres",
    valueHint: "PGBIN",
    description:
      "Path to the postgres binary; pg_ctl, initdb, pg_isready, pg_dump and pg_config are found beside it",
  },
  "remote-ext-base-url": {
    type: "string",
    alias: "r",
    valueHint: "REMOTE_EXT_BASE_URL",
    description: "The base URL for the remote extension storage proxy gateway",
  },
  "external-http-port": {
    type: "string",
    default: "3080",
    valueHint: "EXTERNAL_HTTP_PORT",
    description: "Port of the HTTP server for clients outside the compute (the control plane)",
  },
  "internal-http-port": {
    type: "string",
    default: "3081",
    valueHint: "INTERNAL_HTTP_PORT",
    description: "Port of the HTTP server for local clients (the neon extension, local_proxy)",
  },
  "http-port": {
    type: "string",
    valueHint: "HTTP_PORT",
    description:
      "Older single-port form; in lakebase mode the external port is HTTP_PORT and the internal one HTTP_PORT+1, otherwise it has no effect",
  },
  pgdata: {
    type: "string",
    alias: "D",
    required: true,
    valueHint: "DATADIR",
    description: "Postgres data directory (wiped on every start)",
  },
  connstr: {
    type: "string",
    alias: "C",
    required: true,
    valueHint: "DATABASE_URL",
    description: "URL compute_ctl uses to connect to the local Postgres",
  },
  "privileged-role-name": {
    type: "string",
    default: "neon_superuser",
    valueHint: "PRIVILEGED_ROLE_NAME",
    description: "Name of the privileged role granted to users (lowercase letters and '_' only)",
  },
  cgroup: {
    type: "string",
    default: "neon-postgres",
    valueHint: "CGROUP",
    description: "cgroup the vm-monitor watches",
  },
  "filecache-connstr": {
    type: "string",
    default:
      "host=localhost port=5432 dbname=postgres user=cloud_admin sslmode=disable application_name=vm-monitor",
    valueHint: "FILECACHE_CONNSTR",
    description: "Connection string the vm-monitor uses to resize the file cache",
  },
  "vm-monitor-addr": {
    type: "string",
    default: "0.0.0.0:10301",
    valueHint: "VM_MONITOR_ADDR",
    description: "Address the vm-monitor listens on for the autoscaler agent",
  },
  "resize-swap-on-bind": {
    type: "boolean",
    description: "Resize swap to the spec's swap_size_bytes before starting Postgres",
  },
  "set-disk-quota-for-fs": {
    type: "string",
    valueHint: "SET_DISK_QUOTA_FOR_FS",
    description: "Mountpoint to apply the spec's disk_quota_bytes to",
  },
  config: {
    type: "string",
    alias: "c",
    valueHint: "CONFIG",
    description: "Path to a ComputeConfig JSON file",
  },
  "compute-id": {
    type: "string",
    alias: "i",
    required: true,
    valueHint: "COMPUTE_ID",
    description: "Compute id: used in the control-plane URL and checked in JWTs",
  },
  "control-plane-uri": {
    type: "string",
    alias: "p",
    valueHint: "CONTROL_PLANE_API_BASE_URL",
    description: "Base URL of the control plane to fetch the config from",
  },
  "installed-extensions-collection-interval": {
    type: "string",
    default: "3600",
    valueHint: "INSTALLED_EXTENSIONS_COLLECTION_INTERVAL",
    description: "Interval in seconds for collecting installed extensions statistics",
  },
  dev: {
    type: "boolean",
    description: "Development mode: on a signal, do not kill pgbouncer and local_proxy",
  },
  "pg-init-timeout": {
    type: "string",
    valueHint: "PG_INIT_TIMEOUT",
    description: "Seconds Postgres may take to start before the monitor gives up (lakebase mode)",
  },
  "lakebase-mode": {
    type: "enum",
    options: ["true", "false"],
    default: "false",
    valueHint: "LAKEBASE_MODE",
    description: "Lakebase (Hadron) mode; takes an explicit value",
  },
  "spec-path": {
    type: "string",
    alias: "S",
    valueHint: "FILE",
    description: "Path to a ComputeSpec or ComputeConfig JSON file (older form of --config)",
  },
  "log-level": {
    type: "enum",
    options: LOG_LEVELS,
    default: "info",
    valueHint: "LOG_LEVEL",
    description:
      "Log level; without it, RUST_LOG is read as a filter (e.g. `warn,compute_ctl=debug`)",
  },
  "log-format": {
    type: "enum",
    options: LOG_FORMATS,
    default: "text",
    valueHint: "LOG_FORMAT",
    description: "Log line format",
  },
  help: { type: "boolean", alias: "h", description: "Print help" },
  version: { type: "boolean", description: "Print version" },
} satisfies ArgsDef;

type ArgName = keyof typeof args;

const DESCRIPTION = "Boots a stateless Postgres compute from Neon storage and supervises it";

/** The compute_ctl command. Call parseCli to parse argv: citty's own parser is not strict. */
export const command = defineCommand({
  meta: { name: "compute_ctl", version: VERSION, description: DESCRIPTION },
  args,
});

/** The privileged role's name is written into SQL bare; clap's value parser refuses others. */
function checkPrivilegedRoleName<N extends string>(table: ArgTable<N>, name: N, raw: string): void {
  if (!isPrivilegedRoleName(raw)) {
    throw invalidValue(
      table,
      name,
      raw,
      "--privileged-role-name can only contain lowercase letters and underscores",
    );
  }
}

function parseRemoteExtBaseUrl(raw: string): string {
  // Extension paths are later resolved against this base, so it must end in exactly one '/'
  // or the last path segment would be replaced.
  const withSlash = `${raw.replace(/\/+$/, "")}/`;
  const bad = (reason: string) => invalidValue(RUN, "remote-ext-base-url", raw, reason);
  let url: URL;
  try {
    url = new URL(withSlash);
  } catch {
    throw bad("not a valid URL");
  }
  if (url.searchParams.size !== 0) throw bad("parameters detected in remote extensions base URL");
  return url.href;
}

/** The run's table: the flags of the reference compute_ctl plus ours. */
const RUN: ArgTable<ArgName> = {
  args: args as Record<ArgName, ArgDef>,
  integers: {
    "external-http-port": "u16",
    "internal-http-port": "u16",
    "http-port": "u16",
    "installed-extensions-collection-interval": "u64",
    "pg-init-timeout": "u64",
  },
  // pgbin's default comes from POSTGRES_PATH; RUST_LOG is read as a filter when --log-level is
  // not given (parseCli does that, not argValue).
  env: { pgbin: "POSTGRES_PATH", "log-level": "RUST_LOG" },
  // clap's conflicts_with, plus ours for -S.
  conflicts: [
    ["http-port", "external-http-port"],
    ["http-port", "internal-http-port"],
    ["config", "control-plane-uri"],
    ["spec-path", "config"],
    ["spec-path", "control-plane-uri"],
  ],
  stopAt: ["help", "version"],
  check(name, raw) {
    if (name === "privileged-role-name") checkPrivilegedRoleName(RUN, name, raw);
    else if (name === "remote-ext-base-url") parseRemoteExtBaseUrl(raw);
  },
};

const CONFIG_SOURCES: ArgName[] = ["config", "control-plane-uri", "spec-path"];

/** The subcommands main.ts dispatches before the flags are parsed, as --help lists them. */
export const SUBCOMMANDS: [string, string][] = [
  ["spec plan", "Print the statements applying a spec would run, changing nothing"],
  ["vm-monitor", "Run the vm-monitor alone, for the autoscaler agent"],
];

/** What a usage error ends with: where to read how the command is used. */
export function helpHint(command = "compute_ctl"): string {
  return `see '${command} --help'`;
}

/**
 * The --help text, rendered from the same table as the parser: every flag with its short form,
 * value name, description, environment variable, default and possible values.
 * (citty's renderUsage is async, colours its output by environment, and cannot show env vars.)
 */
export function renderHelp(): string {
  return [
    DESCRIPTION,
    "",
    `Usage: ${usageLine(RUN, "compute_ctl")}`,
    `       compute_ctl <COMMAND> [ARGS]`,
    "",
    "Exactly one of --config, --control-plane-uri or --spec-path is required.",
    "",
    "Commands:",
    ...SUBCOMMANDS.map(([name, what]) => `  ${name.padEnd(12)}${what}`),
    "  Each has its own --help, e.g. `compute_ctl spec plan --help`.",
    "",
    "Options:",
    ...renderOptions(RUN),
  ].join("\n");
}

/** Async form for callers that treat help like citty's renderUsage. */
export async function helpText(): Promise<string> {
  return renderHelp();
}

export function versionText(): string {
  return `compute_ctl ${VERSION} (build_tag ${BUILD_TAG}, target ${BUILD_TARGET})`;
}

/**
 * Parses argv (without the program name) strictly, as clap does for the reference, then
 * validates what clap leaves to main(). Pure: no printing, no exit. Throws UsageError (one line
 * that names the flag) for anything wrong with the command line.
 */
export function parseCli(argv: string[], env: Record<string, string | undefined>): CliResult {
  const scanned = scanArgs(RUN, argv);
  if ("stop" in scanned) {
    return scanned.stop === "help"
      ? { kind: "help", text: renderHelp() }
      : { kind: "version", text: versionText() };
  }
  const given = scanned.given;
  checkGiven(RUN, given);

  const str = (name: ArgName): string | undefined => argValue(RUN, given, name, env);
  const req = (name: ArgName): string => str(name)!;
  const int = (name: ArgName): number | null => {
    const v = str(name);
    return v === undefined ? null : parseInteger(RUN, name, v, RUN.integers![name]!);
  };

  // The reference parses connstr in main(), after the command line was accepted, and a failure
  // exits 1: a configuration error, not a usage error. The message names the flag; the value is
  // not echoed: it may hold a password.
  let connstr: URL;
  try {
    connstr = new URL(req("connstr"));
  } catch {
    throw new ConfigError("cannot parse connstr as a URL: the value of --connstr is not a URL");
  }

  // The reference unwraps a missing control-plane URI and panics; say what is needed instead.
  if (!CONFIG_SOURCES.some((n) => given.has(n))) {
    throw new UsageError("one of --config, --control-plane-uri or --spec-path is required");
  }

  const lakebaseMode = req("lakebase-mode") === "true";
  const httpPort = int("http-port");
  let externalHttpPort = int("external-http-port")!;
  let internalHttpPort = int("internal-http-port")!;
  // --http-port matters only in lakebase mode: external = P, internal = P + 1.
  if (lakebaseMode && httpPort !== null) {
    if (httpPort === 65535) {
      // The reference would overflow u16 here; refuse instead of wrapping to port 0.
      throw new UsageError(
        "invalid value '65535' for '--http-port <HTTP_PORT>': the internal port HTTP_PORT+1 would exceed 65535",
      );
    }
    externalHttpPort = httpPort;
    internalHttpPort = httpPort + 1;
  }

  const remote = str("remote-ext-base-url");
  const logLevelGiven = given.get("log-level");
  const privilegedRoleName = req("privileged-role-name");
  checkPrivilegedRoleName(RUN, "privileged-role-name", privilegedRoleName);

  return {
    kind: "run",
    params: {
      pgbin: req("pgbin"),
      pgdata: req("pgdata"),
      connstr,
      remoteExtBaseUrl: remote === undefined ? null : parseRemoteExtBaseUrl(remote),
      externalHttpPort,
      internalHttpPort,
      httpPort,
      privilegedRoleName,
      cgroup: req("cgroup"),
      filecacheConnstr: req("filecache-connstr"),
      vmMonitorAddr: req("vm-monitor-addr"),
      resizeSwapOnBind: given.has("resize-swap-on-bind"),
      setDiskQuotaForFs: str("set-disk-quota-for-fs") ?? null,
      configPath: str("config") ?? null,
      specPath: str("spec-path") ?? null,
      controlPlaneUri: str("control-plane-uri") ?? null,
      computeId: req("compute-id"),
      installedExtensionsCollectionInterval: int("installed-extensions-collection-interval")!,
      dev: given.has("dev"),
      pgInitTimeout: int("pg-init-timeout"),
      lakebaseMode,
      logLevel:
        typeof logLevelGiven === "string"
          ? (logLevelGiven as LogLevelName)
          : parseLevelFilter(env.RUST_LOG),
      logFormat: req("log-format") as LogFormat,
    },
  };
}

// `compute_ctl spec plan`: the dry run (spec/plan-cli.ts runs it).

export interface SpecPlanParams {
  connstr: URL;
  specPath: string | null;
  configPath: string | null;
  privilegedRoleName: string;
}

export type SpecPlanCliResult =
  | { kind: "run"; params: SpecPlanParams }
  | { kind: "help"; text: string };

type SpecPlanArg = "connstr" | "spec-path" | "config" | "privileged-role-name" | "help";

const SPEC_PLAN: ArgTable<SpecPlanArg> = {
  args: {
    connstr: {
      type: "string",
      alias: "C",
      required: true,
      valueHint: "URL",
      description: "URL of the Postgres whose catalog the plan is made against",
    },
    "spec-path": {
      type: "string",
      alias: "S",
      valueHint: "SPEC_FILE",
      description: "Path to a ComputeSpec or ComputeConfig JSON file",
    },
    config: {
      type: "string",
      alias: "c",
      valueHint: "CONFIG_FILE",
      description: "Path to a ComputeConfig JSON file",
    },
    "privileged-role-name": {
      type: "string",
      default: "neon_superuser",
      valueHint: "PRIVILEGED_ROLE_NAME",
      description: "Name of the privileged role granted to users (lowercase letters and '_' only)",
    },
    help: { type: "boolean", alias: "h", description: "Print help" },
  },
  conflicts: [["spec-path", "config"]],
  stopAt: ["help"],
  check(name, raw) {
    if (name === "privileged-role-name") checkPrivilegedRoleName(SPEC_PLAN, name, raw);
  },
};

function specPlanHelp(): string {
  return [
    "Print the statements that applying the spec would run against a Postgres, without running them.",
    "",
    `Usage: ${usageLine(SPEC_PLAN, "compute_ctl spec plan")} (--spec-path <SPEC_FILE> | --config <CONFIG_FILE>)`,
    "",
    "Options:",
    ...renderOptions(SPEC_PLAN),
  ].join("\n");
}

/**
 * Parses the arguments after `spec` (`plan …`). Throws UsageError (exit 2) for the command line,
 * ConfigError (exit 1) for a connstr that is not a URL.
 */
export function parseSpecPlanCli(argv: string[]): SpecPlanCliResult {
  const [sub, ...rest] = argv;
  if (sub === "--help" || sub === "-h" || sub === "help") {
    return { kind: "help", text: specPlanHelp() };
  }
  if (sub !== "plan") {
    throw new UsageError(
      sub === undefined
        ? "missing subcommand for 'spec': expected 'plan'"
        : `unknown subcommand 'spec ${sub}': expected 'plan'`,
    );
  }
  const scanned = scanArgs(SPEC_PLAN, rest);
  if ("stop" in scanned) return { kind: "help", text: specPlanHelp() };
  const given = scanned.given;
  checkGiven(SPEC_PLAN, given);
  if (!given.has("spec-path") && !given.has("config")) {
    throw new UsageError("one of --spec-path or --config is required");
  }
  const raw = argValue(SPEC_PLAN, given, "connstr")!;
  let connstr: URL;
  try {
    connstr = new URL(raw);
  } catch {
    throw new ConfigError(`invalid value '${raw}' for '--connstr': not a URL`);
  }
  const privilegedRoleName = argValue(SPEC_PLAN, given, "privileged-role-name")!;
  return {
    kind: "run",
    params: {
      connstr,
      specPath: argValue(SPEC_PLAN, given, "spec-path") ?? null,
      configPath: argValue(SPEC_PLAN, given, "config") ?? null,
      privilegedRoleName,
    },
  };
}

// `compute_ctl vm-monitor`: the monitor alone, as the reference's separate `vm-monitor` binary.

export interface VmMonitorParams {
  cgroup: string | null;
  pgconnstr: string | null;
  addr: string;
}

export type VmMonitorCliResult =
  | { kind: "run"; params: VmMonitorParams }
  | { kind: "help"; text: string };

type VmMonitorArg = "cgroup" | "pgconnstr" | "addr" | "help";

const VM_MONITOR: ArgTable<VmMonitorArg> = {
  args: {
    cgroup: {
      type: "string",
      alias: "c",
      valueHint: "CGROUP",
      description: "cgroup whose memory is watched (none: no memory watcher)",
    },
    pgconnstr: {
      type: "string",
      alias: "p",
      valueHint: "PGCONNSTR",
      description:
        "libpq keyword=value connection string for file cache sizing (none: no file cache)",
    },
    addr: {
      type: "string",
      alias: "a",
      valueHint: "ADDR",
      description: "Address to listen on for the autoscaler agent",
      default: "0.0.0.0:10301",
    },
    help: { type: "boolean", alias: "h", description: "Print help" },
  },
  stopAt: ["help"],
};

function vmMonitorHelp(): string {
  return [
    "Runs the vm-monitor alone, for the autoscaler agent",
    "",
    `Usage: ${usageLine(VM_MONITOR, "compute_ctl vm-monitor")}`,
    "",
    "Options:",
    ...renderOptions(VM_MONITOR),
  ].join("\n");
}

/** Parses the arguments after `vm-monitor` with the same scanner as the main command. */
export function parseVmMonitorCli(argv: string[]): VmMonitorCliResult {
  const scanned = scanArgs(VM_MONITOR, argv);
  if ("stop" in scanned) return { kind: "help", text: vmMonitorHelp() };
  const given: Given<VmMonitorArg> = scanned.given;
  checkGiven(VM_MONITOR, given);
  return {
    kind: "run",
    params: {
      cgroup: argValue(VM_MONITOR, given, "cgroup") ?? null,
      pgconnstr: argValue(VM_MONITOR, given, "pgconnstr") ?? null,
      addr: argValue(VM_MONITOR, given, "addr")!,
    },
  };
}
