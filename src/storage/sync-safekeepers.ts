// The full safekeeper sync: `postgres --sync-safekeepers` runs the walproposer until a quorum of
// safekeepers agrees on the end of WAL, prints that LSN on stdout and exits 0. The walproposer
// reads its configuration (neon.safekeepers, ...) from $PGDATA/postgresql.conf, so the conf must
// be written first and PGDATA is passed in the environment: this mode does not accept -D.
import { constants } from "node:os";
import type { Subprocess } from "bun";
import { formatLsn, tryParseLsn } from "../api/lsn.ts";
import { log } from "../log.ts";
import { forwardPostgresLogs } from "../postgres/log-forwarder.ts";
import { type ChildRegistry, childEnv, maybeCgexec, type RunAs } from "../postgres/process.ts";
import { pgKnobs } from "../testing-knobs.ts";
import { spawnChild } from "../util/spawn.ts";

/** After SIGTERM on timeout, how long the child gets before SIGKILL. */
const KILL_GRACE_MS = 5_000;

export interface SyncSafekeepersOptions {
  pgbin: string;
  pgdata: string;
  token: string | null;
  children: ChildRegistry;
  /**
   * Bound on one run (default 10 min; knob COMPUTE_CTL_TESTING_SYNC_SK_TIMEOUT_MS). The reference
   * has none and can hang forever when no quorum is reachable; a bounded run fails the start (or
   * the shutdown sync) instead, long enough for any legitimate WAL catch-up between safekeepers.
   */
  timeoutMs?: number;
  /** After the timeout's SIGTERM, how long the child gets before SIGKILL (default 5 s). */
  killGraceMs?: number;
  /** Tests running as root run the child as the postgres user. */
  runAs?: RunAs;
  /** Receives each `PG:` record of the child's stderr (default: raw on stderr). */
  writeLog?: (line: string) => void;
}

/** Rust's ExitStatus Display, which the reference puts in its error text. */
function statusText(proc: Subprocess): string {
  if (proc.exitCode !== null) return `exit status: ${proc.exitCode}`;
  const name = proc.signalCode ?? "unknown";
  const num = constants.signals[name as keyof typeof constants.signals];
  return `signal: ${num ?? "?"} (${name})`;
}

/**
 * One `[cgexec -g memory:neon-postgres] <pgbin> --sync-safekeepers` run; returns the LSN it
 * printed, normalised ("X/Y", e.g. "0/169AD58"; "0/0" for a fresh timeline). The child is
 * registered as "sync-safekeepers" so a termination signal reaches it (SIGTERM).
 */
export async function syncSafekeepers(opts: SyncSafekeepersOptions): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? pgKnobs.syncSkTimeoutMs;
  const proc = spawnChild(maybeCgexec([opts.pgbin, "--sync-safekeepers"]), {
    env: childEnv(opts.token, { PGDATA: opts.pgdata }),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
  });
  opts.children.add("sync-safekeepers", proc);
  log.debug("started postgres --sync-safekeepers", { pid: proc.pid });

  const logsDone = forwardPostgresLogs(proc.stderr, opts.writeLog ? { write: opts.writeLog } : {});
  const stdoutDone = new Response(proc.stdout).arrayBuffer();

  let timedOut = false;
  let killTimer: Timer | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    log.warn(`postgres --sync-safekeepers did not finish in ${timeoutMs} ms, sending SIGTERM`, {
      pid: proc.pid,
    });
    proc.kill("SIGTERM");
    killTimer = setTimeout(() => proc.kill("SIGKILL"), opts.killGraceMs ?? KILL_GRACE_MS);
  }, timeoutMs);
  try {
    await proc.exited;
  } finally {
    clearTimeout(timer);
    clearTimeout(killTimer);
  }
  // A grandchild still holding the pipes must not hang us once the child is gone.
  const [stdoutBytes] = await Promise.all([
    withDeadline(stdoutDone, 1_000, new ArrayBuffer(0)),
    withDeadline(logsDone, 1_000, undefined),
  ]);
  const stdout = new TextDecoder().decode(stdoutBytes);

  if (timedOut) {
    throw new Error(
      `postgres --sync-safekeepers timed out after ${timeoutMs} ms (${statusText(proc)})`,
    );
  }
  if (proc.exitCode !== 0) {
    throw new Error(
      `postgres --sync-safekeepers exited with non-zero status: ${statusText(proc)}. stdout: ${stdout}`,
    );
  }
  const lsn = tryParseLsn(stdout);
  if (lsn === null) {
    throw new Error(
      `postgres --sync-safekeepers printed no LSN: expected "X/Y" on stdout, got ${JSON.stringify(stdout)}`,
    );
  }
  return formatLsn(lsn);
}

function withDeadline<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: Timer | undefined;
  return Promise.race([
    p.catch(() => fallback),
    new Promise<T>((r) => {
      timer = setTimeout(() => r(fallback), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The reference's retry budget: 5 retries, 6 attempts. */
export const SYNC_SK_RETRIES = 5;

/**
 * utils::backoff::exponential_backoff_duration with base 0.1 and max 3 s, in ms: 0 for n = 0,
 * else min(1.1^n, 3) s. The reference sleeps backoff(n) after failed attempt n (0-based), so the
 * retries come after 0, 1.1, 1.21, 1.331 and 1.4641 s.
 */
export function syncBackoffMs(n: number, scale = 1): number {
  if (n <= 0) return 0;
  return Math.min(1.1 ** n, 3.0) * 1000 * scale;
}

export interface SyncSafekeepersWithRetriesOptions extends SyncSafekeepersOptions {
  /** Retries after the first attempt (default 5). */
  retries?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Called before each attempt (0-based) with the delay slept before it (ms). */
  onAttempt?: (attempt: number, delayMs: number) => void;
  /** Multiplier on the backoff (default: knob COMPUTE_CTL_TESTING_SYNC_SK_BACKOFF_SCALE, 1). */
  backoffScale?: number;
  /** Stops further attempts (e.g. on termination); the running one ends by its own signal. */
  signal?: AbortSignal;
}

/**
 * syncSafekeepers with the reference's retries. Returns the LSN and the duration of the attempt
 * that succeeded (`sync_safekeepers_ms`). The last error is wrapped in "failed to sync
 * safekeepers".
 */
export async function syncSafekeepersWithRetries(
  opts: SyncSafekeepersWithRetriesOptions,
): Promise<{ lsn: string; ms: number }> {
  const retries = opts.retries ?? SYNC_SK_RETRIES;
  const sleep = opts.sleep ?? ((ms: number) => Bun.sleep(ms));
  const scale = opts.backoffScale ?? pgKnobs.syncSkBackoffScale;
  for (let attempt = 0; ; attempt++) {
    const delay = attempt === 0 ? 0 : syncBackoffMs(attempt - 1, scale);
    if (delay > 0) await sleep(delay);
    if (opts.signal?.aborted) {
      throw new Error("failed to sync safekeepers", {
        cause: opts.signal.reason ?? new Error("aborted"),
      });
    }
    opts.onAttempt?.(attempt, delay);
    const started = performance.now();
    try {
      const lsn = await syncSafekeepers(opts);
      const ms = Math.round(performance.now() - started);
      if (attempt > 0) log.info(`sync_safekeepers succeeded after ${attempt} retries`);
      return { lsn, ms };
    } catch (err) {
      const message = (err as Error)?.message ?? String(err);
      if (attempt < retries && !opts.signal?.aborted) {
        log.info(`sync_safekeepers failed, will retry (attempt ${attempt}): ${message}`);
        continue;
      }
      log.warn(`sync_safekeepers still failed after ${attempt} retries, giving up: ${message}`);
      throw new Error("failed to sync safekeepers", { cause: err });
    }
  }
}
