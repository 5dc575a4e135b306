// The command line: every flag of the reference compute_ctl (same long names, short forms and
// defaults) plus a few of our own, turned into validated Params.
//
// citty defines the command (names, shorts, types, defaults, descriptions: the one source of
// truth), but its parser is lenient: it accepts unknown flags, missing values and garbage numbers.
// The reference is strict (clap), so parseCli scans argv itself against those definitions and
// reproduces clap's rules and its error wording, on one line.
import {
  type ArgsDef,
  type BooleanArgDef,
  defineCommand,
  type EnumArgDef,
  type StringArgDef,
} from "citty";
import type { Params } from "./config/params.ts";
import { ConfigError, UsageError } from "./errors.ts";
import { type LogFormat, type LogLevelName, parseLevelFilter } from "./log.ts";
import { closestName } from "./util/suggest.ts";
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
/** compute_ctl takes no positionals, so every definition is one of these. */
type ArgDef = BooleanArgDef | StringArgDef | EnumArgDef;

const DESCRIPTION = "Boots a stateless Postgres compute from Neon storage and supervises it";

/** The compute_ctl command. Call parseCli to parse argv: citty's own parser is not strict. */
export const command = defineCommand({
  meta: { name: "compute_ctl", version: VERSION, description: DESCRIPTION },
  args,
});

/** Integer flags and their range (clap's u16 for ports, u64 for seconds). */
const INTEGER_ARGS: Partial<Record<ArgName, "u16" | "u64">> = {
  "external-http-port": "u16",
  "internal-http-port": "u16",
  "http-port": "u16",
  "installed-extensions-collection-interval": "u64",
  "pg-init-timeout": "u64",
};

/** Flags that take their default from the environment when not given. */
const ENV_ARGS: Partial<Record<ArgName, string>> = { pgbin: "POSTGRES_PATH" };

/** Pairs that may not both be given explicitly (clap's conflicts_with, plus ours for -S). */
const CONFLICTS: [ArgName, ArgName][] = [
  ["http-port", "external-http-port"],
  ["http-port", "internal-http-port"],
  ["config", "control-plane-uri"],
  ["spec-path", "config"],
  ["spec-path", "control-plane-uri"],
];

const CONFIG_SOURCES: ArgName[] = ["config", "control-plane-uri", "spec-path"];

function defOf(name: ArgName): ArgDef {
  return args[name] as ArgDef;
}

function takesValue(def: ArgDef): boolean {
  return def.type === "string" || def.type === "enum";
}

function shortOf(def: ArgDef): string | undefined {
  const a = def.alias;
  return typeof a === "string" ? a : a?.[0];
}

/** How clap names an argument in messages: `--pgdata <DATADIR>`, or `--dev` for a switch. */
function display(name: ArgName): string {
  const def = defOf(name);
  return takesValue(def) ? `--${name} <${def.valueHint}>` : `--${name}`;
}

const BY_SHORT = new Map<string, ArgName>();
for (const name of Object.keys(args) as ArgName[]) {
  const s = shortOf(defOf(name));
  if (s) BY_SHORT.set(s, name);
}

function isArgName(s: string): s is ArgName {
  return Object.hasOwn(args, s);
}

/** clap's wording, with a suggestion when the name looks like a typo of a real one. */
function unknownLong(long: string): UsageError {
  const near = closestName(long, Object.keys(args));
  const tip = near === undefined ? "" : ` (did you mean '--${near}'?)`;
  return new UsageError(`unexpected argument '--${long}' found${tip}`);
}

/** clap's rule: a following token starting with '-' (other than '-' alone) is a new argument. */
function looksLikeFlag(token: string): boolean {
  return token.startsWith("-") && token !== "-";
}

function parseInteger(name: ArgName, raw: string, kind: "u16" | "u64"): number {
  const bad = (reason: string) =>
    new UsageError(`invalid value '${raw}' for '${display(name)}': ${reason}`);
  // Rust's integer parsing: an optional sign, then digits only (no spaces, no hex, no '_').
  if (raw === "") throw bad("cannot parse integer from empty string");
  const signed = kind === "u16" ? /^[+-]?\d+$/ : /^\+?\d+$/;
  if (!signed.test(raw)) throw bad("invalid digit found in string");
  const n = BigInt(raw);
  if (kind === "u16") {
    if (n < 0n || n > 65535n) throw bad(`${n} is not in 0..=65535`);
  } else if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
    // u64 would allow more, but JS numbers are exact only up to 2^53-1 and no timer needs more.
    throw bad(`${n} is not in 0..=${Number.MAX_SAFE_INTEGER}`);
  }
  return Number(n);
}

function parseRemoteExtBaseUrl(raw: string): string {
  // Extension paths are later resolved against this base, so it must end in exactly one '/'
  // or the last path segment would be replaced.
  const withSlash = `${raw.replace(/\/+$/, "")}/`;
  const bad = (reason: string) =>
    new UsageError(`invalid value '${raw}' for '${display("remote-ext-base-url")}': ${reason}`);
  let url: URL;
  try {
    url = new URL(withSlash);
  } catch {
    throw bad("not a valid URL");
  }
  if (url.searchParams.size !== 0) throw bad("parameters detected in remote extensions base URL");
  return url.href;
}

function parsePrivilegedRoleName(raw: string): string {
  // The name is interpolated into SQL unquoted, so only a safe alphabet is allowed.
  if (!/^[a-z_]+$/.test(raw)) {
    throw new UsageError(
      `invalid value '${raw}' for '${display("privileged-role-name")}': --privileged-role-name can only contain lowercase letters and underscores`,
    );
  }
  return raw;
}

/** Checks a value as clap's value parser would, at the point the flag is read. */
function checkValue(name: ArgName, raw: string): void {
  const def = defOf(name);
  if (def.type === "enum") {
    const options = def.options ?? [];
    if (!options.includes(raw)) {
      throw new UsageError(
        `invalid value '${raw}' for '${display(name)}' [possible values: ${options.join(", ")}]`,
      );
    }
    return;
  }
  const int = INTEGER_ARGS[name];
  if (int) parseInteger(name, raw, int);
  else if (name === "privileged-role-name") parsePrivilegedRoleName(raw);
  else if (name === "remote-ext-base-url") parseRemoteExtBaseUrl(raw);
}

function missingValue(name: ArgName): UsageError {
  const def = defOf(name);
  const hint = def.type === "enum" ? ` [possible values: ${(def.options ?? []).join(", ")}]` : "";
  return new UsageError(`a value is required for '${display(name)}' but none was supplied${hint}`);
}

/** Explicitly given flags, in command-line order: a value, or `true` for a switch. */
type Given = Map<ArgName, string | true>;

type Early = { kind: "help" } | { kind: "version" };

/** Scans argv left to right with clap's rules; stops early at --help / --version. */
function scan(argv: string[]): Given | Early {
  const given: Given = new Map();

  const record = (name: ArgName, value: string | true): Early | undefined => {
    if (given.has(name)) {
      throw new UsageError(`the argument '${display(name)}' cannot be used multiple times`);
    }
    if (value !== true) checkValue(name, value);
    given.set(name, value);
    if (name === "help") return { kind: "help" };
    if (name === "version") return { kind: "version" };
    return undefined;
  };

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === "--") {
      // Everything after `--` is positional, and compute_ctl takes no positionals.
      const extra = argv[i + 1];
      if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}' found`);
      break;
    }
    if (token.startsWith("--")) {
      const eq = token.indexOf("=");
      const long = eq === -1 ? token.slice(2) : token.slice(2, eq);
      const attached = eq === -1 ? undefined : token.slice(eq + 1);
      // clap does not infer abbreviations, so only an exact long name matches.
      if (!isArgName(long)) throw unknownLong(long);
      const def = defOf(long);
      let value: string | true;
      if (!takesValue(def)) {
        if (attached !== undefined) {
          throw new UsageError(
            `unexpected value '${attached}' for '${display(long)}' found; no more were expected`,
          );
        }
        value = true;
      } else if (attached !== undefined) {
        value = attached;
      } else {
        const next = argv[i + 1];
        if (next === undefined || looksLikeFlag(next)) throw missingValue(long);
        value = next;
        i++;
      }
      const early = record(long, value);
      if (early) return early;
      continue;
    }
    if (looksLikeFlag(token)) {
      // A cluster of shorts: switches may be stacked; a value-taking short consumes the rest of
      // the token (`-Dvalue`, `-D=value`) or, if nothing is left, the next argument.
      let j = 1;
      while (j < token.length) {
        const c = token[j]!;
        const name = BY_SHORT.get(c);
        if (!name) throw new UsageError(`unexpected argument '-${token.slice(j)}' found`);
        const def = defOf(name);
        if (!takesValue(def)) {
          const early = record(name, true);
          if (early) return early;
          j++;
          continue;
        }
        let rest = token.slice(j + 1);
        let value: string;
        if (rest !== "") {
          if (rest.startsWith("=")) rest = rest.slice(1);
          value = rest;
        } else {
          const next = argv[i + 1];
          if (next === undefined || looksLikeFlag(next)) throw missingValue(name);
          value = next;
          i++;
        }
        const early = record(name, value);
        if (early) return early;
        break;
      }
      continue;
    }
    throw new UsageError(`unexpected argument '${token}' found`);
  }
  return given;
}

/** The usage line clap prints: options, then every required flag. */
function usageLine(): string {
  const required = (Object.keys(args) as ArgName[]).filter((n) => defOf(n).required);
  return `compute_ctl [OPTIONS] ${required.map(display).join(" ")}`;
}

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
 * The --help text, rendered from the same definitions as the parser: every flag with its short
 * form, value name, description, environment variable, default and possible values.
 * (citty's renderUsage is async, colours its output by environment, and cannot show env vars.)
 */
export function renderHelp(): string {
  const lines: string[] = [];
  for (const name of Object.keys(args) as ArgName[]) {
    const def = defOf(name);
    const short = shortOf(def);
    // clap's long-help layout: the flag on its own line, the notes indented below it.
    lines.push(`  ${short ? `-${short}, ` : "    "}${display(name)}`);
    const notes: string[] = [];
    if (def.description) notes.push(def.description);
    const envName = ENV_ARGS[name] ?? (name === "log-level" ? "RUST_LOG" : undefined);
    if (envName) notes.push(`[env: ${envName}]`);
    if (def.type === "enum") notes.push(`[possible values: ${(def.options ?? []).join(", ")}]`);
    if (def.default !== undefined) notes.push(`[default: ${def.default}]`);
    if (def.required) notes.push("[required]");
    for (const note of notes) lines.push(`          ${note}`);
    lines.push("");
  }
  return [
    DESCRIPTION,
    "",
    `Usage: ${usageLine()}`,
    `       compute_ctl <COMMAND> [ARGS]`,
    "",
    "Exactly one of --config, --control-plane-uri or --spec-path is required.",
    "",
    "Commands:",
    ...SUBCOMMANDS.map(([name, what]) => `  ${name.padEnd(12)}${what}`),
    "  Each has its own --help, e.g. `compute_ctl spec plan --help`.",
    "",
    "Options:",
    ...lines,
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
  const scanned = scan(argv);
  if (!(scanned instanceof Map)) {
    return scanned.kind === "help"
      ? { kind: "help", text: renderHelp() }
      : { kind: "version", text: versionText() };
  }
  const given = scanned;

  // clap checks conflicts among explicitly given flags (defaults never conflict), in
  // command-line order, before it checks required flags.
  for (const name of given.keys()) {
    for (const [a, b] of CONFLICTS) {
      const other = name === a ? b : name === b ? a : undefined;
      if (other && given.has(other)) {
        throw new UsageError(
          `the argument '${display(name)}' cannot be used with '${display(other)}'`,
        );
      }
    }
  }

  const missing = (Object.keys(args) as ArgName[]).filter(
    (n) => defOf(n).required && !given.has(n),
  );
  if (missing.length > 0) {
    throw new UsageError(
      `the following required arguments were not provided: ${missing.map(display).join(", ")}`,
    );
  }

  const str = (name: ArgName): string | undefined => {
    const v = given.get(name);
    if (typeof v === "string") return v;
    const envName = ENV_ARGS[name];
    // Like clap, a set but empty variable still counts as a value.
    if (envName !== undefined && env[envName] !== undefined) return env[envName];
    const d = defOf(name).default;
    return d === undefined ? undefined : String(d);
  };
  const req = (name: ArgName): string => str(name)!;
  const int = (name: ArgName): number | null => {
    const v = str(name);
    return v === undefined ? null : parseInteger(name, v, INTEGER_ARGS[name]!);
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
      privilegedRoleName: parsePrivilegedRoleName(req("privileged-role-name")),
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

// `compute_ctl vm-monitor`: the monitor alone, as the reference's separate `vm-monitor` binary.

export interface VmMonitorParams {
  cgroup: string | null;
  pgconnstr: string | null;
  addr: string;
}

export type VmMonitorCliResult =
  | { kind: "run"; params: VmMonitorParams }
  | { kind: "help"; text: string };

interface SubFlag {
  short: string;
  valueHint: string;
  description: string;
  default?: string;
}

/** The subcommand's flags (all take a value); the keys are the long names. */
const VM_MONITOR_FLAGS = {
  cgroup: {
    short: "c",
    valueHint: "CGROUP",
    description: "cgroup whose memory is watched (none: no memory watcher)",
  },
  pgconnstr: {
    short: "p",
    valueHint: "PGCONNSTR",
    description:
      "libpq keyword=value connection string for file cache sizing (none: no file cache)",
  },
  addr: {
    short: "a",
    valueHint: "ADDR",
    description: "Address to listen on for the autoscaler agent",
    default: "0.0.0.0:10301",
  },
} satisfies Record<string, SubFlag>;

type VmMonitorFlag = keyof typeof VM_MONITOR_FLAGS;

function vmMonitorHelp(): string {
  const lines = [
    "Runs the vm-monitor alone, for the autoscaler agent",
    "",
    "Usage: compute_ctl vm-monitor [OPTIONS]",
    "",
    "Options:",
  ];
  for (const [name, f] of Object.entries(VM_MONITOR_FLAGS) as [VmMonitorFlag, SubFlag][]) {
    lines.push(`  -${f.short}, --${name} <${f.valueHint}>`, `          ${f.description}`);
    if (f.default !== undefined) lines.push(`          [default: ${f.default}]`);
  }
  lines.push("  -h, --help", "          Print help");
  return lines.join("\n");
}

/** Parses the arguments after `vm-monitor` with the same strictness as the main command. */
export function parseVmMonitorCli(argv: string[]): VmMonitorCliResult {
  const byShort = new Map<string, VmMonitorFlag>();
  for (const [name, f] of Object.entries(VM_MONITOR_FLAGS) as [VmMonitorFlag, SubFlag][]) {
    byShort.set(f.short, name);
  }
  const show = (n: VmMonitorFlag) => `--${n} <${VM_MONITOR_FLAGS[n].valueHint}>`;
  const given = new Map<VmMonitorFlag, string>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === "-h" || token === "--help") return { kind: "help", text: vmMonitorHelp() };
    let name: VmMonitorFlag | undefined;
    let value: string | undefined;
    if (token.startsWith("--")) {
      const eq = token.indexOf("=");
      const long = eq === -1 ? token.slice(2) : token.slice(2, eq);
      if (!Object.hasOwn(VM_MONITOR_FLAGS, long)) {
        const near = closestName(long, Object.keys(VM_MONITOR_FLAGS));
        const tip = near === undefined ? "" : ` (did you mean '--${near}'?)`;
        throw new UsageError(`unexpected argument '--${long}' found${tip}`);
      }
      name = long as VmMonitorFlag;
      if (eq !== -1) value = token.slice(eq + 1);
    } else if (looksLikeFlag(token)) {
      name = byShort.get(token[1]!);
      if (!name) throw new UsageError(`unexpected argument '${token}' found`);
      const rest = token.slice(2);
      if (rest !== "") value = rest.startsWith("=") ? rest.slice(1) : rest;
    } else {
      throw new UsageError(`unexpected argument '${token}' found`);
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || looksLikeFlag(next)) {
        throw new UsageError(`a value is required for '${show(name)}' but none was supplied`);
      }
      value = next;
      i++;
    }
    if (given.has(name)) {
      throw new UsageError(`the argument '${show(name)}' cannot be used multiple times`);
    }
    given.set(name, value);
  }
  return {
    kind: "run",
    params: {
      cgroup: given.get("cgroup") ?? null,
      pgconnstr: given.get("pgconnstr") ?? null,
      addr: given.get("addr") ?? VM_MONITOR_FLAGS.addr.default,
    },
  };
}
