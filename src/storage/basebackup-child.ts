// One basebackup attempt in a child process: the same executable, started with
// COMPUTE_CTL_INTERNAL_ROLE=basebackup (src/main.ts then loads only basebackup-worker.ts). The
// child connects, streams and extracts; compute_ctl keeps the retries, the deadline, the logs and
// the metrics. Extracting is the one CPU-heavy burst of a start: the native code and allocator
// memory it brings in (gunzip, the optimizing JIT tiers) would stay resident in a long-lived
// process, and they leave with the child.
//
// The conversation, one JSON object a line:
//   compute_ctl → child (stdin): the job (the source with its secrets, PGDATA, the deadline), then
//     `abort` when the deadline passes. EOF on stdin means compute_ctl is gone: the child exits.
//   child → compute_ctl (stdout): `log` lines, `connected`, `first` (the payload's first byte),
//     `bytes` (progress, at most every 100 ms), then `done` with the metrics or `error` with the
//     error's cause chain (message, name and errno fields of each link), rebuilt here so that the
//     error reads exactly as one thrown in this process.
// The secrets travel on stdin only: never in argv or the environment.
import { accessSync, constants } from "node:fs";
import type { Subprocess } from "bun";
import { type Fields, type LogLevelName, log } from "../log.ts";
import { environment } from "../testing-knobs.ts";
import { spawnChild } from "../util/spawn.ts";
import { textLines } from "../util/streams.ts";
import { type BasebackupMetrics, type SourceJob, timeoutMessage } from "./basebackup.ts";

/** The environment variable that makes the executable a helper child, and its value here. */
export const INTERNAL_ROLE_ENV = "COMPUTE_CTL_INTERNAL_ROLE";
export const BASEBACKUP_ROLE = "basebackup";

/** The exit code of a child whose parent went away (EOF on its stdin). */
export const PARENT_GONE_EXIT = 3;

/** What the child reads first on stdin. */
export interface WorkerJob {
  source: SourceJob;
  pgdata: string;
  /** The attempt's bound, as its timeout error names it (compute_ctl keeps the timer). */
  timeoutMs: number;
}

/** One link of an error's cause chain. `error: false`: a thrown non-Error, stringified. */
export interface WireLink {
  message: string;
  error?: false;
  name?: string;
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

export type WorkerEvent =
  | { t: "log"; level: LogLevelName; message: string; fields?: Fields }
  | { t: "connected"; connectMicros: number }
  | { t: "first" }
  | { t: "bytes"; n: number }
  | ({ t: "done" } & Omit<BasebackupMetrics, "attempts">)
  | { t: "error"; chain: WireLink[] };

const MAX_LINKS = 64;

/** `err` and its causes, outermost first, as data. */
export function encodeError(err: unknown): WireLink[] {
  const out: WireLink[] = [];
  const seen = new Set<unknown>();
  let cur: unknown = err;
  while (cur !== undefined && cur !== null && !seen.has(cur) && out.length < MAX_LINKS) {
    seen.add(cur);
    if (!(cur instanceof Error)) {
      out.push({ message: String(cur), error: false });
      break;
    }
    const e = cur as NodeJS.ErrnoException;
    const link: WireLink = { message: e.message };
    if (e.name !== "Error") link.name = e.name;
    if (typeof e.code === "string") link.code = e.code;
    if (typeof e.errno === "number") link.errno = e.errno;
    if (typeof e.syscall === "string") link.syscall = e.syscall;
    if (typeof e.path === "string") link.path = e.path;
    out.push(link);
    cur = e.cause;
  }
  return out;
}

/** The error encodeError described: the same messages, causes and errno fields. */
export function decodeError(chain: WireLink[]): unknown {
  let cause: unknown;
  for (let i = chain.length - 1; i >= 0; i--) {
    const link = chain[i] as WireLink;
    if (link.error === false) {
      cause = link.message;
      continue;
    }
    const e = new Error(link.message, cause === undefined ? undefined : { cause });
    const errno = e as NodeJS.ErrnoException;
    if (link.name !== undefined) e.name = link.name;
    if (link.code !== undefined) errno.code = link.code;
    if (link.errno !== undefined) errno.errno = link.errno;
    if (link.syscall !== undefined) errno.syscall = link.syscall;
    if (link.path !== undefined) errno.path = link.path;
    cause = e;
  }
  return cause ?? new Error("the basebackup child reported an empty error");
}

/** How compute_ctl starts its basebackup children. */
export interface ChildLauncher {
  /** Where each child is registered, so that compute_ctl's termination reaches it. */
  children?: { add(role: "basebackup", proc: Subprocess): void };
  /** The command that runs this executable's entry (default: selfCommand()). */
  command?: string[];
  /** After the deadline's `abort`, how long the child gets to report before SIGKILL (2 s). */
  abortGraceMs?: number;
}

/**
 * The command line that runs this program again. A compiled executable runs its embedded entry
 * (its modules live under /$bunfs/); from source it is bun and the entry script. On Linux the
 * executable is named through /proc/<pid>/exe, which stays this very file even when a new
 * version has replaced it on disk since the start.
 */
export function selfCommand(): string[] {
  const exe = process.platform === "linux" ? procExe() : process.execPath;
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
  return compiled ? [exe] : [exe, Bun.main];
}

/** `/proc/<pid>/exe`, or the executable's path where /proc does not let us run it. */
function procExe(): string {
  const exe = `/proc/${process.pid}/exe`;
  try {
    accessSync(exe, constants.X_OK);
    return exe;
  } catch {
    return process.execPath;
  }
}

const LEVELS = new Set<string>(["error", "warn", "info", "debug", "trace"]);

/** The child's stdout, a parsed event a line. */
async function* events(stdout: ReadableStream<Uint8Array>): AsyncGenerator<WorkerEvent> {
  for await (const line of textLines(stdout, "drop")) {
    if (line !== "") yield JSON.parse(line) as WorkerEvent;
  }
}

function statusOf(proc: Subprocess): string {
  if (proc.signalCode) return `signal ${proc.signalCode}`;
  return `exit code ${proc.exitCode}`;
}

/**
 * One attempt in a child: resolves with its metrics (basebackup_ms from the spawn to the child's
 * report) or rejects with the child's error, rebuilt. At `timeoutMs` the child is asked to abort
 * (it then fails with the deadline's error, its byte count exact); a child that does not answer
 * within the grace is killed and the same error is made here from its last progress. The child
 * has exited when this settles.
 */
export async function attemptInChild(
  launcher: ChildLauncher,
  a: {
    job: SourceJob;
    peer: string | undefined;
    pgdata: string;
    timeoutMs: number;
    onFirstByte?: () => void;
  },
): Promise<Omit<BasebackupMetrics, "attempts">> {
  const started = performance.now();
  const proc = spawnChild(launcher.command ?? selfCommand(), {
    env: { ...environment.all(), [INTERNAL_ROLE_ENV]: BASEBACKUP_ROLE },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  launcher.children?.add("basebackup", proc);
  log.debug("started the basebackup child process", { pid: proc.pid });
  const tell = (line: string) => {
    try {
      proc.stdin.write(`${line}\n`);
      proc.stdin.flush();
    } catch {
      // the child is gone; its exit says so
    }
  };
  const job: WorkerJob = { source: a.job, pgdata: a.pgdata, timeoutMs: a.timeoutMs };
  tell(JSON.stringify(job));

  let connected = false;
  let received = 0;
  let outcome: Extract<WorkerEvent, { t: "done" | "error" }> | undefined;
  let timedOut = false;
  let protocolError: unknown;
  let killTimer: Timer | undefined;
  const killAfter = (ms: number) => {
    killTimer ??= setTimeout(() => proc.kill("SIGKILL"), ms);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    tell("abort");
    killAfter(launcher.abortGraceMs ?? 2_000);
  }, a.timeoutMs);
  try {
    for await (const ev of events(proc.stdout)) {
      if (ev.t === "log") {
        if (LEVELS.has(ev.level))
          log[ev.level as Exclude<LogLevelName, "off">](ev.message, ev.fields);
      } else if (ev.t === "connected") {
        connected = true;
      } else if (ev.t === "first") {
        a.onFirstByte?.();
      } else if (ev.t === "bytes") {
        received = ev.n;
      } else if (ev.t === "done" || ev.t === "error") {
        outcome = ev;
        break;
      }
    }
  } catch (err) {
    protocolError = err;
  } finally {
    clearTimeout(timer);
    // EOF on its stdin ends a child that is still there; one that does not go is killed.
    try {
      proc.stdin.end();
    } catch {
      // already closed
    }
    if (outcome === undefined) proc.kill("SIGKILL");
    else killAfter(launcher.abortGraceMs ?? 2_000);
    await proc.exited;
    clearTimeout(killTimer);
  }
  if (outcome?.t === "done") {
    return {
      basebackupBytes: outcome.basebackupBytes,
      basebackupMs: Math.floor(performance.now() - started),
      pageserverConnectMicros: outcome.pageserverConnectMicros,
    };
  }
  if (outcome?.t === "error") throw decodeError(outcome.chain);
  if (timedOut) throw new Error(timeoutMessage(a.peer, a.timeoutMs, connected ? received : null));
  throw new Error(
    `the basebackup child process (pid ${proc.pid}) ended with ${statusOf(proc)} before it reported`,
    protocolError === undefined ? undefined : { cause: protocolError },
  );
}
