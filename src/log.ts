// Logging on stderr in the reference's shape:
//   2025-07-31T12:00:00.123456Z  INFO request{method=POST uri=/configure}: message key=value
// or one JSON object per line with --log-format json. A logger carries its span chain (tags
// joined with ':' exactly like tracing's span prefixes); lines below the level are dropped
// before anything is formatted.
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
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
  if (ms !== cachedMs) {
    const second = Math.floor(ms / 1000);
    if (second !== cachedSecond) {
      // 2025-07-31T12:00:00.123Z -> 2025-07-31T12:00:00, once per second of log lines.
      cachedSecondText = new Date(second * 1000).toISOString().slice(0, 19);
      cachedSecond = second;
    }
    cachedMsText = `${cachedSecondText}.${DIGITS3[ms - second * 1000]}`;
    cachedMs = ms;
  }
  return `${cachedMsText}${DIGITS3[Math.floor(micros - ms * 1000)]}Z`;
}
let cachedSecond = Number.NaN;
let cachedSecondText = "";
let cachedMs = Number.NaN;
let cachedMsText = "";
/** "000" … "999". */
const DIGITS3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));

function fieldValue(v: unknown): string {
  if (typeof v === "string") return /[\s"]/.test(v) || v === "" ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === "object" && v !== null) return JSON.stringify(v);
  return String(v);
}

export { parseLevelFilter } from "./util/log-level.ts";

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
  /** Writes `text` by the end of the current event-loop turn (a sink without it writes at once). */
  defer?(text: string): void;
}

/**
 * stderr, with blocking writes (see writeAll). A line is written at once, as the reference does,
 * so it reaches stderr before whatever the code does next (a socket closed, an answer sent).
 * Lines logged inside `deferLines` (the access log of the hot HTTP routes, whose answer goes out
 * after the handler returns anyway) are instead kept until the end of the event-loop turn and
 * written together: one write for every request answered in that turn, which does not wait for a
 * slow reader while less than STDERR_BACKLOG_MAX bytes are behind. Order is kept: a line written
 * at once first writes what is deferred. Deferred lines are written at the process's `exit` event
 * (process.exit, the end of the event loop, the exit after an uncaught exception), so only a
 * SIGKILL can lose them: those of the turn it interrupts, and any the reader had not taken yet.
 */
class StderrSink implements Sink {
  #pending = "";
  /** Deferred bytes the descriptor refused (EAGAIN: the reader is behind), retried every ms. */
  #stuck: Buffer | null = null;
  #scheduled = false;
  readonly #flush = () => this.flush();
  readonly #flushAll = () => this.#writeBacklog("");

  constructor() {
    process.on("exit", this.#flushAll);
  }

  write(text: string): void {
    this.#writeBacklog(text);
  }

  defer(text: string): void {
    this.#pending += text;
    if (this.#pending.length > STDERR_BUFFER_MAX) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  /**
   * Writes the deferred lines without waiting for a slow reader: what the descriptor does not
   * take now is retried a millisecond later (the event loop keeps serving meanwhile). Past
   * STDERR_BACKLOG_MAX bytes waiting, it waits like any other write.
   */
  flush(): void {
    this.#scheduled = false;
    let bytes = this.#stuck;
    this.#stuck = null;
    if (this.#pending !== "") {
      const more = Buffer.from(this.#pending, "utf8");
      this.#pending = "";
      bytes = bytes === null ? more : Buffer.concat([bytes, more]);
    }
    if (bytes === null) return;
    const rest = writeSome(2, bytes);
    if (rest === null) return;
    if (rest.length > STDERR_BACKLOG_MAX) {
      writeAll(2, rest);
      return;
    }
    this.#stuck = rest;
    this.#scheduled = true;
    setTimeout(this.#flush, 1);
  }

  /** Everything deferred, then `text`, waiting for the reader as long as it takes. */
  #writeBacklog(text: string): void {
    if (this.#stuck !== null) {
      writeAll(2, this.#stuck);
      this.#stuck = null;
    }
    if (this.#pending !== "") {
      text = this.#pending + text;
      this.#pending = "";
    }
    if (text !== "") writeAll(2, Buffer.from(text, "utf8"));
  }
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes `bytes` to `fd` whole, blocking while the reader is behind (as the reference's stderr
 * does). process.stderr.write would queue it in memory instead: with a log reader slower than the
 * access log (a stalled collector, a busy parent) compute_ctl's memory grew without bound,
 * ~300 MiB a minute under the soak's load. A non-blocking descriptor is retried every
 * millisecond; a reader that is gone (EPIPE) or any other error drops the text.
 */
function writeAll(fd: number, bytes: Buffer): void {
  let rest: Buffer | null = bytes;
  for (;;) {
    rest = writeSome(fd, rest);
    if (rest === null) return;
    Atomics.wait(pause, 0, 0, 1);
  }
}

/**
 * Writes what `fd` takes now; returns the rest when the descriptor is full (EAGAIN), null when
 * all was written or the text is dropped (EPIPE or another error).
 */
function writeSome(fd: number, bytes: Buffer): Buffer | null {
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return null;
      return bytes.subarray(off);
    }
  }
  return null;
}

/** How many deferred bytes may wait for a slow reader before writes block on it. */
const STDERR_BACKLOG_MAX = 1024 * 1024;
const STDERR_BUFFER_MAX = 64 * 1024;

let sink: Sink = new StderrSink();
let format: LogFormat = "text";

/** A logger's span chain, and its text-format line head (escaped once, on first use). */
interface Tag {
  readonly text: string;
  head: string | undefined;
}

function render(lvl: number, tag: Tag, message: string, fields: Fields | undefined): string {
  const level = LEVEL_LABEL[lvl] ?? "INFO";
  const ts = formatMicros(nowMicros());
  if (format === "json") {
    const line: Record<string, unknown> = { timestamp: ts, level, message };
    if (tag.text) line.span = tag.text;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) line[k] = v instanceof Error ? v.message : v;
    }
    return `${JSON.stringify(line)}\n`;
  }
  // Escaping is character by character, so the span chain's part is escaped once per logger.
  tag.head ??= tag.text ? escapeControls(`${tag.text}: `) : "";
  // Each piece is escaped by itself (numbers need none): no pass over the joined text.
  let text = escapeControls(message);
  for (const k in fields) {
    const v = fields[k];
    if (v === undefined) continue;
    const value =
      typeof v === "number" || (typeof v === "string" && v !== "" && !NEEDS_WORK.test(v))
        ? v
        : escapeControls(fieldValue(v));
    text += ` ${escapeControls(k)}=${value}`;
  }
  return `${ts} ${PADDED_LABEL[level] ?? level.padStart(5)} ${tag.head}${text}\n`;
}

const PADDED_LABEL: Record<string, string> = {
  ERROR: "ERROR",
  WARN: " WARN",
  INFO: " INFO",
  DEBUG: "DEBUG",
  TRACE: "TRACE",
};

const CONTROL_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
const CONTROL = /[\x00-\x1f\x7f\u0085\u2028\u2029]/;
/** A string field value that must be quoted (blank or `"`) or escaped; one pass for both. */
const NEEDS_WORK = /[\s"\x00-\x1f\x7f\u0085\u2028\u2029]/;

/**
 * Control characters (and the Unicode line separators) as visible escapes: a text line is one
 * event, whatever a request path, header, name or error text put into it, and no escape sequence
 * reaches a terminal.
 */
export function escapeControls(text: string): string {
  if (!CONTROL.test(text)) return text;
  return text.replace(/[\x00-\x1f\x7f\u0085\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return CONTROL_ESCAPES[c] ?? `\\u{${code.toString(16)}}`;
  });
}

/**
 * Lakebase mode's file logs: `<dir>/pgcctl.YYYY-MM-DD` (UTC), one object per line in the shape of
 * Postgres's JSON logs, appended to across restarts. When the day changes the next file is
 * opened and only the newest other one is kept (two files in all).
 */
export const LOG_FILE_PREFIX = "pgcctl";
const LOG_FILES_KEPT = 2;

let ids = { instanceId: "", computeId: "" };

/** The ids every file log line carries, once a spec names them. */
export function setLogIds(next: { instanceId: string; computeId: string }): void {
  ids = { ...next };
}

/** `2025-07-31 12:00:00.123 GMT`. */
export function formatGmtMillis(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)} GMT`;
}

/** One file log line (with its newline). */
export function fileLogLine(at: number, level: string, message: string): string {
  return `{"timestamp": ${JSON.stringify(formatGmtMillis(at))}, "error_severity": ${JSON.stringify(level)}, "file_name": "compute_ctl", "backend_type": "compute_ctl_self", "pg_instance_id": ${JSON.stringify(ids.instanceId)}, "pg_compute_id": ${JSON.stringify(ids.computeId)}, "message": ${JSON.stringify(message)}}\n`;
}

class DailyFiles {
  #day = "";
  #fd: number | null = null;

  constructor(
    readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  write(level: string, message: string): void {
    const at = this.now();
    const day = new Date(at).toISOString().slice(0, 10);
    try {
      if (day !== this.#day || this.#fd === null) this.#open(day);
      writeSync(this.#fd as number, fileLogLine(at, level, message));
    } catch {
      // A full or vanished log directory must not take compute_ctl down; stderr still has it.
    }
  }

  #open(day: string): void {
    const first = this.#day === "";
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
    this.#day = day;
    if (!first) this.#prune(day);
    this.#fd = openSync(join(this.dir, `${LOG_FILE_PREFIX}.${day}`), "a");
  }

  /** Before a new day's file: keep only the newest LOG_FILES_KEPT - 1 others. */
  #prune(day: string): void {
    const ours = readdirSync(this.dir)
      .filter((n) => /^pgcctl\.\d{4}-\d{2}-\d{2}$/.test(n) && n !== `${LOG_FILE_PREFIX}.${day}`)
      .sort();
    for (const old of ours.slice(0, Math.max(0, ours.length - (LOG_FILES_KEPT - 1)))) {
      rmSync(join(this.dir, old), { force: true });
    }
  }
}

let files: DailyFiles | null = null;

/** Starts the file logs in `dir` (created if missing). Exported for tests with a fake clock. */
export function startFileLogs(dir: string, now?: () => number): void {
  files = new DailyFiles(dir, now);
}

/** Stops writing file logs (tests). */
export function stopFileLogs(): void {
  files = null;
}

function fileMessage(message: string, fields: Fields | undefined): string {
  const kv = Object.entries(fields ?? {})
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}=${fieldValue(v)}`)
    .join("");
  return `${message ?? ""}${kv}`;
}

let level = LEVELS.info;

let deferring = false;

/**
 * Runs `fn`; the lines it logs synchronously may reach stderr at the end of the event-loop turn
 * instead of at once (still in order with every other line). For work whose visible effect comes
 * after `fn` returns anyway, such as a request's access log lines.
 */
export function deferLines<T>(fn: () => T): T {
  const outer = deferring;
  deferring = true;
  try {
    return fn();
  } finally {
    deferring = outer;
  }
}

/** A process whose lines its parent writes (see configureLogging's `forward`), or null. */
let forward: ((level: LogLevelName, message: string, fields?: Fields) => void) | null = null;
const LEVEL_NAME = Object.fromEntries(
  Object.entries(LEVELS).map(([name, n]) => [n, name as LogLevelName]),
) as Record<number, LogLevelName>;

function emit(lvl: number, tag: Tag, message: string, fields: Fields | undefined): void {
  if (lvl > level) return;
  if (forward) {
    forward(LEVEL_NAME[lvl] ?? "info", message ?? "", fields);
    return;
  }
  const line = render(lvl, tag, message ?? "", fields);
  if (deferring && sink.defer) sink.defer(line);
  else sink.write(line);
  files?.write(LEVEL_LABEL[lvl] ?? "INFO", fileMessage(message, fields));
}

function wrap(text: string): Logger {
  const tag: Tag = { text, head: undefined };
  return {
    error: (m, f) => emit(LEVELS.error, tag, m, f),
    warn: (m, f) => emit(LEVELS.warn, tag, m, f),
    info: (m, f) => emit(LEVELS.info, tag, m, f),
    debug: (m, f) => emit(LEVELS.debug, tag, m, f),
    trace: (m, f) => emit(LEVELS.trace, tag, m, f),
    span: (name, f) => {
      let inner = name;
      if (f) {
        let sep = "{";
        for (const k in f) {
          inner += `${sep}${k}=${fieldValue(f[k])}`;
          sep = " ";
        }
        inner += sep === "{" ? "{}" : "}";
      }
      return wrap(text ? `${text}:${inner}` : inner);
    },
  };
}

export const log: Logger = wrap("");

export function configureLogging(opts: {
  level?: LogLevelName;
  format?: LogFormat;
  sink?: Sink;
  /** Lakebase mode's COMPUTE_CTL_LOG_DIRECTORY: daily JSON files beside stderr. */
  fileDirectory?: string | null;
  /**
   * Hands every line at or above the level to this function instead of formatting it (a helper
   * child process passes its lines to compute_ctl, which logs them as its own).
   */
  forward?: (level: LogLevelName, message: string, fields?: Fields) => void;
}) {
  if (opts.forward !== undefined) forward = opts.forward;
  if (opts.level !== undefined) level = LEVELS[opts.level];
  if (opts.fileDirectory) startFileLogs(opts.fileDirectory);
  if (opts.format !== undefined) format = opts.format;
  if (opts.sink !== undefined) sink = opts.sink;
}

/** Writes a line as-is on stderr (the `PG:` forwarding of Postgres output bypasses formatting). */
export function writeRaw(line: string): void {
  sink.write(line.endsWith("\n") ? line : `${line}\n`);
}
