// The one argument scanner: every command line compute_ctl takes (the run, `spec plan`,
// `vm-monitor`) is a table of flags scanned here with clap's rules and clap's error wording, on
// one line. Errors are UsageErrors; the caller adds the "see --help" hint and the exit code.
import { UsageError } from "../errors.ts";
import { closestName } from "./suggest.ts";

/** One flag. The shape is citty's ArgDef, so the run's table doubles as its citty command. */
export interface ArgDef {
  type: "boolean" | "string" | "enum";
  /** The short form (one character). */
  alias?: string | string[];
  /** clap's value name, shown in help and errors: `--pgdata <DATADIR>`. */
  valueHint?: string;
  description?: string;
  default?: string | boolean;
  required?: boolean;
  options?: readonly string[];
}

/** A command: its flags (keys are the long names) and the rules clap applies to them. */
export interface ArgTable<N extends string = string> {
  args: Record<N, ArgDef>;
  /** Integer flags and their range (clap's u16 for ports, u64 for seconds). */
  integers?: Partial<Record<N, "u16" | "u64">>;
  /** Flags that take their value from the environment when not given (shown in help). */
  env?: Partial<Record<N, string>>;
  /** Pairs that may not both be given explicitly (clap's conflicts_with). */
  conflicts?: [N, N][];
  /** Switches that end the scan at once (help, version). */
  stopAt?: N[];
  /** Further checks of a value as it is read (clap's value parsers); throw a UsageError. */
  check?: (name: N, raw: string) => void;
}

/** Explicitly given flags, in command-line order: a value, or `true` for a switch. */
export type Given<N extends string> = Map<N, string | true>;

export type Scanned<N extends string> = { given: Given<N> } | { stop: N };

function defOf<N extends string>(table: ArgTable<N>, name: N): ArgDef {
  return table.args[name];
}

function takesValue(def: ArgDef): boolean {
  return def.type === "string" || def.type === "enum";
}

export function shortOf(def: ArgDef): string | undefined {
  const a = def.alias;
  return typeof a === "string" ? a : a?.[0];
}

export function namesOf<N extends string>(table: ArgTable<N>): N[] {
  return Object.keys(table.args) as N[];
}

/** How clap names an argument in messages: `--pgdata <DATADIR>`, or `--dev` for a switch. */
export function display<N extends string>(table: ArgTable<N>, name: N): string {
  const def = defOf(table, name);
  return takesValue(def) ? `--${name} <${def.valueHint}>` : `--${name}`;
}

/** clap's wording for a value its parser refused. */
export function invalidValue<N extends string>(
  table: ArgTable<N>,
  name: N,
  raw: string,
  reason: string,
): UsageError {
  return new UsageError(`invalid value '${raw}' for '${display(table, name)}': ${reason}`);
}

/** clap's rule: a following token starting with '-' (other than '-' alone) is a new argument. */
function looksLikeFlag(token: string): boolean {
  return token.startsWith("-") && token !== "-";
}

/** Rust's integer parsing: an optional sign, then digits only (no spaces, no hex, no '_'). */
export function parseInteger<N extends string>(
  table: ArgTable<N>,
  name: N,
  raw: string,
  kind: "u16" | "u64",
): number {
  const bad = (reason: string) => invalidValue(table, name, raw, reason);
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

function checkValue<N extends string>(table: ArgTable<N>, name: N, raw: string): void {
  const def = defOf(table, name);
  if (def.type === "enum") {
    const options = def.options ?? [];
    if (!options.includes(raw)) {
      throw new UsageError(
        `invalid value '${raw}' for '${display(table, name)}' [possible values: ${options.join(", ")}]`,
      );
    }
    return;
  }
  const int = table.integers?.[name];
  if (int) parseInteger(table, name, raw, int);
  table.check?.(name, raw);
}

function missingValue<N extends string>(table: ArgTable<N>, name: N): UsageError {
  const def = defOf(table, name);
  const hint = def.type === "enum" ? ` [possible values: ${(def.options ?? []).join(", ")}]` : "";
  return new UsageError(
    `a value is required for '${display(table, name)}' but none was supplied${hint}`,
  );
}

/** clap's wording, with a suggestion when the name looks like a typo of a real one. */
function unknownLong(names: string[], long: string): UsageError {
  const near = closestName(long, names);
  const tip = near === undefined ? "" : ` (did you mean '--${near}'?)`;
  return new UsageError(`unexpected argument '--${long}' found${tip}`);
}

/**
 * Scans argv left to right with clap's rules: exact long names (no abbreviations), `--name=value`,
 * stacked short switches, `-Dvalue`/`-D=value`/`-D value`, no repeats, no positionals, values
 * checked as they are read. Stops early at a `stopAt` switch (so an error before --help wins).
 */
export function scanArgs<N extends string>(table: ArgTable<N>, argv: string[]): Scanned<N> {
  const names = namesOf(table);
  const byShort = new Map<string, N>();
  for (const name of names) {
    const s = shortOf(defOf(table, name));
    if (s) byShort.set(s, name);
  }
  const given: Given<N> = new Map();
  const record = (name: N, value: string | true): boolean => {
    if (given.has(name)) {
      throw new UsageError(`the argument '${display(table, name)}' cannot be used multiple times`);
    }
    if (value !== true) checkValue(table, name, value);
    given.set(name, value);
    return table.stopAt?.includes(name) ?? false;
  };

  let i = 0;
  /** The argument after the flag as its value (consumed), unless it is missing or a flag. */
  const nextValue = (name: N): string => {
    const next = argv[i + 1];
    if (next === undefined || looksLikeFlag(next)) throw missingValue(table, name);
    i++;
    return next;
  };

  for (; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === "--") {
      // Everything after `--` is positional, and no command here takes positionals.
      const extra = argv[i + 1];
      if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}' found`);
      break;
    }
    if (token.startsWith("--")) {
      const eq = token.indexOf("=");
      const long = eq === -1 ? token.slice(2) : token.slice(2, eq);
      const attached = eq === -1 ? undefined : token.slice(eq + 1);
      if (!Object.hasOwn(table.args, long)) throw unknownLong(names, long);
      const name = long as N;
      let value: string | true;
      if (!takesValue(defOf(table, name))) {
        if (attached !== undefined) {
          throw new UsageError(
            `unexpected value '${attached}' for '${display(table, name)}' found; no more were expected`,
          );
        }
        value = true;
      } else {
        value = attached ?? nextValue(name);
      }
      if (record(name, value)) return { stop: name };
      continue;
    }
    if (looksLikeFlag(token)) {
      // A cluster of shorts: switches may be stacked; a value-taking short consumes the rest of
      // the token (`-Dvalue`, `-D=value`) or, if nothing is left, the next argument.
      let j = 1;
      while (j < token.length) {
        const name = byShort.get(token[j]!);
        if (!name) throw new UsageError(`unexpected argument '-${token.slice(j)}' found`);
        if (!takesValue(defOf(table, name))) {
          if (record(name, true)) return { stop: name };
          j++;
          continue;
        }
        const rest = token.slice(j + 1);
        const value = rest === "" ? nextValue(name) : rest.replace(/^=/, "");
        if (record(name, value)) return { stop: name };
        break;
      }
      continue;
    }
    throw new UsageError(`unexpected argument '${token}' found`);
  }
  return { given };
}

/**
 * clap's checks after the scan: conflicts among explicitly given flags (defaults never
 * conflict), in command-line order, then the required flags.
 */
export function checkGiven<N extends string>(table: ArgTable<N>, given: Given<N>): void {
  for (const name of given.keys()) {
    for (const [a, b] of table.conflicts ?? []) {
      const other = name === a ? b : name === b ? a : undefined;
      if (other && given.has(other)) {
        throw new UsageError(
          `the argument '${display(table, name)}' cannot be used with '${display(table, other)}'`,
        );
      }
    }
  }
  const missing = namesOf(table).filter((n) => defOf(table, n).required && !given.has(n));
  if (missing.length > 0) {
    throw new UsageError(
      `the following required arguments were not provided: ${missing.map((n) => display(table, n)).join(", ")}`,
    );
  }
}

/** A value-taking flag's value: given, else its environment variable, else its default. */
export function argValue<N extends string>(
  table: ArgTable<N>,
  given: Given<N>,
  name: N,
  env: Record<string, string | undefined> = {},
): string | undefined {
  const v = given.get(name);
  if (typeof v === "string") return v;
  const envName = table.env?.[name];
  // Like clap, a set but empty variable still counts as a value.
  if (envName !== undefined && env[envName] !== undefined) return env[envName];
  const d = defOf(table, name).default;
  return d === undefined ? undefined : String(d);
}

/** The usage line clap prints: options, then every required flag. */
export function usageLine<N extends string>(table: ArgTable<N>, command: string): string {
  const required = namesOf(table).filter((n) => defOf(table, n).required);
  return [`${command} [OPTIONS]`, ...required.map((n) => display(table, n))].join(" ");
}

/**
 * The Options section of --help in clap's long-help layout: the flag on its own line, its
 * description, environment variable, possible values and default indented below it.
 */
export function renderOptions<N extends string>(table: ArgTable<N>): string[] {
  const lines: string[] = [];
  for (const name of namesOf(table)) {
    const def = defOf(table, name);
    const short = shortOf(def);
    lines.push(`  ${short ? `-${short}, ` : "    "}${display(table, name)}`);
    const notes: string[] = [];
    if (def.description) notes.push(def.description);
    const envName = table.env?.[name];
    if (envName) notes.push(`[env: ${envName}]`);
    if (def.type === "enum") notes.push(`[possible values: ${(def.options ?? []).join(", ")}]`);
    if (def.default !== undefined) notes.push(`[default: ${def.default}]`);
    if (def.required) notes.push("[required]");
    for (const note of notes) lines.push(`          ${note}`);
    lines.push("");
  }
  return lines;
}
