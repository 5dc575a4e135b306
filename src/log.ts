// Logging on stderr in the reference's shape:
//   2025-07-31T12:00:00.123456Z  INFO request{method=POST uri=/configure}: message key=value
// or one JSON object per line with --log-format json. consola carries the levels and the span
// chain (its tags, joined with ':' exactly like tracing's span prefixes); a reporter renders.
import { type ConsolaInstance, createConsola, type LogObject } from "consola";
import { nowMicros } from "./util/clock.ts";

export type LogFormat = "text" | "json";
export type LogLevelName = "off" | "error" | "warn" | "info" | "debug" | "trace";
export type Fields = Record<string, unknown>;

const LEVELS: Record<LogLevelName, number> = {
  off: -999,
  error: 0,
  warn: 1,
  info: 3,
  debug: 4,
  trace: 5,
};
const LEVEL_LABEL: Record<number, string> = {
  0: "ERROR",
  1: "WARN",
  3: "INFO",
  4: "DEBUG",
  5: "TRACE",
};

/** RFC 3339 UTC with exactly six fractional digits and `Z`. */
export function formatMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const iso = new Date(ms).toISOString(); // 2025-07-31T12:00:00.123Z
  const frac = String(micros % 1_000_000).padStart(6, "0");
  return `${iso.slice(0, 19)}.${frac}Z`;
}

function fieldValue(v: unknown): string {
  if (typeof v === "string") return /[\s"]/.test(v) || v === "" ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === "object" && v !== null) return JSON.stringify(v);
  return String(v);
}

/**
 * Parses a RUST_LOG-style filter: comma-separated directives, a bare level is the default, and
 * `compute_ctl=<level>` (our crate's name upstream) wins over it. Unknown text falls back to info.
 */
export function parseLevelFilter(filter: string | undefined): LogLevelName {
  if (!filter) return "info";
  let fallback: LogLevelName | undefined;
  for (const raw of filter.split(",")) {
    const d = raw.trim().toLowerCase();
    const eq = d.indexOf("=");
    if (eq === -1) {
      if (d in LEVELS) fallback = d as LogLevelName;
    } else if (d.slice(0, eq) === "compute_ctl") {
      const lvl = d.slice(eq + 1);
      if (lvl in LEVELS) return lvl as LogLevelName;
    }
  }
  return fallback ?? "info";
}

export interface Logger {
  error(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  debug(message: string, fields?: Fields): void;
  trace(message: string, fields?: Fields): void;
  /** A child whose lines carry `name` as a span prefix, e.g. `request{method=GET uri=/status}`. */
  span(name: string, fields?: Fields): Logger;
}

interface Sink {
  write(text: string): void;
}

let sink: Sink = { write: (t) => process.stderr.write(t) };
let format: LogFormat = "text";

function render(obj: LogObject): string {
  const args = obj.args as [string, Fields | undefined];
  const message = args[0] ?? "";
  const fields = args[1] ?? {};
  const level = LEVEL_LABEL[obj.level] ?? "INFO";
  const ts = formatMicros(nowMicros());
  if (format === "json") {
    const line: Record<string, unknown> = { timestamp: ts, level, message };
    if (obj.tag) line.span = obj.tag;
    for (const [k, v] of Object.entries(fields)) line[k] = v instanceof Error ? v.message : v;
    return `${JSON.stringify(line)}\n`;
  }
  const prefix = obj.tag ? `${obj.tag}: ` : "";
  const kv = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}=${fieldValue(v)}`)
    .join("");
  return `${ts} ${level.padStart(5)} ${prefix}${message}${kv}\n`;
}

const root: ConsolaInstance = createConsola({
  level: LEVELS.info,
  reporters: [{ log: (obj) => sink.write(render(obj)) }],
  // Never fold repeated lines: operators grep every one.
  throttle: 0,
});

function wrap(c: ConsolaInstance): Logger {
  return {
    error: (m, f) => c.error(m, f),
    warn: (m, f) => c.warn(m, f),
    info: (m, f) => c.info(m, f),
    debug: (m, f) => c.debug(m, f),
    trace: (m, f) => c.trace(m, f),
    span: (name, f) => {
      const inner = f
        ? `${name}{${Object.entries(f)
            .map(([k, v]) => `${k}=${fieldValue(v)}`)
            .join(" ")}}`
        : name;
      return wrap(c.withTag(inner));
    },
  };
}

export const log: Logger = wrap(root);

export function configureLogging(opts: { level?: LogLevelName; format?: LogFormat; sink?: Sink }) {
  if (opts.level !== undefined) root.level = LEVELS[opts.level];
  if (opts.format !== undefined) format = opts.format;
  if (opts.sink !== undefined) sink = opts.sink;
}

/** Writes a line as-is on stderr (the `PG:` forwarding of Postgres output bypasses formatting). */
export function writeRaw(line: string): void {
  sink.write(line.endsWith("\n") ? line : `${line}\n`);
}
