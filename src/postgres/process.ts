// The local Postgres process: spawn (no pg_ctl, as the reference), readiness from postmaster.pid,
// `pg_ctl reload`, and the core dumps a crashed Postgres leaves behind.
import { type FSWatcher, watch } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { log, writeRaw } from "../log.ts";
import { environment, pgKnobs } from "../testing-knobs.ts";
import { spawnChild } from "../util/spawn.ts";
import { forwardPostgresLogs } from "./log-forwarder.ts";

/** Run a child as another user. Only tests need it: compute_ctl runs as the Postgres user. */
export interface RunAs {
  uid: number;
  gid: number;
}

/**
 * `[cgexec -g memory:neon-postgres] <cmd>`: on autoscaling VMs (the control plane sets AUTOSCALING)
 * Postgres runs in the cgroup the vm-monitor resizes. cgexec execs, so the pid stays Postgres's.
 */
export function maybeCgexec(cmd: string[]): string[] {
  return environment.autoscaling() ? ["cgexec", "-g", "memory:neon-postgres", ...cmd] : cmd;
}

/** Our environment plus NEON_AUTH_TOKEN when there is a token, plus `extra`. */
export function childEnv(
  token: string | null,
  extra: Record<string, string> = {},
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...environment.all(), ...extra };
  if (token !== null) env.NEON_AUTH_TOKEN = token;
  return env;
}

/**
 * Where a started child is registered so that compute_ctl's termination reaches it (the
 * lifecycle's child registry). `role` decides the signal it gets.
 */
export interface ChildRegistry {
  add(role: "postgres" | "sync-safekeepers", proc: Subprocess): void;
}

export interface SpawnPostgresOptions {
  pgbin: string;
  pgdata: string;
  token: string | null;
  children: ChildRegistry;
  extraEnv?: Record<string, string>;
  /** Tests running as root start Postgres as the postgres user. */
  runAs?: RunAs;
  /** Receives each `PG:` record (default: raw on stderr). */
  writeLog?: (line: string) => void;
}

/** The running postmaster and the forwarding of its stderr (resolves once stderr closes). */
export type PostgresProcess = Subprocess<"ignore", "inherit", "pipe"> & {
  logsDone: Promise<void>;
  /** The message of the last FATAL or PANIC record Postgres logged, if any. */
  lastFatal(): string | null;
};

/** `FATAL:  could not write lock file "postmaster.pid": No space left on device` in a record. */
const FATAL_RECORD = /\b((?:FATAL|PANIC):\s+[^\u200B\n]*)/;

/**
 * Starts `<pgbin> -D <pgdata>`. stdout is inherited and stderr is forwarded as `PG:` lines, as in
 * the reference. stdin is /dev/null where the reference inherits it: the postmaster never reads
 * it, and a terminal's stdin should not be held by a daemon. Registered as "postgres" in
 * `children` so termination sends it SIGINT. Spawn errors (ENOENT, EACCES) throw.
 */
export function spawnPostgres(opts: SpawnPostgresOptions): PostgresProcess {
  const cmd = maybeCgexec([opts.pgbin, "-D", opts.pgdata]);
  const proc = spawnChild(cmd, {
    env: childEnv(opts.token, opts.extraEnv),
    stdin: "ignore",
    stdout: "inherit",
    stderr: "pipe",
    ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
  });
  opts.children.add("postgres", proc);
  log.info("started postgres", { pid: proc.pid, pgdata: opts.pgdata });
  const sink = opts.writeLog ?? writeRaw;
  let lastFatal: string | null = null;
  const write = (line: string) => {
    const m = FATAL_RECORD.exec(line);
    if (m) lastFatal = (m[1] as string).trimEnd();
    sink(line);
  };
  const logsDone = forwardPostgresLogs(proc.stderr, { write });
  return Object.assign(proc, { logsDone, lastFatal: () => lastFatal });
}

/** The exit code the reference reports: the code, or -1 when a signal ended the process. */
export function exitCodeOf(proc: Subprocess): number {
  return proc.exitCode ?? -1;
}

function hasExited(proc: Subprocess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/** The trimmed last line of postmaster.pid, or null when it is missing or empty. */
async function pidFileStatus(pidPath: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(pidPath, "utf8");
  } catch {
    return null;
  }
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const last = lines.at(-1);
  return last === undefined ? null : last.trim();
}

const POLL_MS = 100;

export interface WaitForPostgresOptions {
  /** With `logsDone` and `lastFatal` (a PostgresProcess), an early exit names Postgres's error. */
  proc: Subprocess & Partial<Pick<PostgresProcess, "logsDone" | "lastFatal">>;
  pgdata: string;
  /** Default 60 s (knob COMPUTE_CTL_TESTING_PG_READY_TIMEOUT_MS). */
  timeoutMs?: number;
}

/**
 * Resolves when Postgres accepts connections: the last line of postmaster.pid, trimmed, is
 * `ready` (the postmaster writes `ready   ` there; a hot standby too). Checks the child on every
 * iteration and throws `Postgres exited unexpectedly with code N` (-1 when signalled). Wakes on
 * changes in PGDATA (fs.watch) and at least every 100 ms.
 *
 * On timeout it SIGKILLs the child, waits for it, and throws `timed out while waiting for
 * Postgres to start`. (The reference leaves the child running, orphaned; a start that failed must
 * not leave a half-started Postgres behind.)
 */
export async function waitForPostgres(opts: WaitForPostgresOptions): Promise<void> {
  const { proc, pgdata } = opts;
  const timeoutMs = opts.timeoutMs ?? pgKnobs.pgReadyTimeoutMs;
  const pidPath = join(pgdata, "postmaster.pid");
  const startedAt = performance.now();

  let wake: (() => void) | undefined;
  let watcher: FSWatcher | undefined;
  try {
    // Watching the directory also reports writes to postmaster.pid inside it.
    watcher = watch(pgdata, { persistent: false }, () => wake?.());
    watcher.on("error", () => {
      watcher?.close();
      watcher = undefined;
    });
  } catch (err) {
    log.debug("cannot watch PGDATA, polling only", { error: err });
  }

  try {
    for (;;) {
      if (hasExited(proc)) throw await earlyExit(proc, pgdata);
      const status = await pidFileStatus(pidPath);
      if (status === "ready") break;
      if (performance.now() - startedAt >= timeoutMs) {
        log.warn("Postgres did not become ready in time, killing it", {
          pid: proc.pid,
          timeout_ms: timeoutMs,
        });
        proc.kill("SIGKILL");
        await proc.exited;
        throw new Error("timed out while waiting for Postgres to start");
      }
      let timer: Timer | undefined;
      await Promise.race([
        new Promise<void>((r) => {
          wake = r;
          timer = setTimeout(r, POLL_MS);
        }),
        proc.exited,
      ]);
      clearTimeout(timer);
      wake = undefined;
    }
  } finally {
    watcher?.close();
  }
  log.info("PostgreSQL is now running, continuing to configure it");
}

/**
 * `Postgres exited unexpectedly with code N`, caused by the last FATAL or PANIC Postgres logged
 * (its stderr read to the end, for at most a second) with the data directory, since Postgres names
 * files relative to it: `FATAL:  could not write lock file "postmaster.pid": No space left on
 * device (PGDATA /path)`.
 */
async function earlyExit(proc: WaitForPostgresOptions["proc"], pgdata: string): Promise<Error> {
  const message = `Postgres exited unexpectedly with code ${exitCodeOf(proc)}`;
  if (proc.logsDone) await Promise.race([proc.logsDone, Bun.sleep(1_000)]);
  const fatal = proc.lastFatal?.();
  if (!fatal) return new Error(message);
  return new Error(message, { cause: new Error(`${fatal} (PGDATA ${pgdata})`) });
}

const PG_CTL_TIMEOUT_MS = 60_000;

/**
 * `pg_ctl reload -D <pgdata>` (SIGHUP to the postmaster). As in the reference its exit status is
 * not an error; a failure is logged as a warning with pg_ctl's output. Bounded to 60 s.
 */
export async function pgCtlReload(
  pgCtl: string,
  pgdata: string,
  opts: { runAs?: RunAs } = {},
): Promise<void> {
  let proc: Subprocess<"ignore", "pipe", "pipe">;
  try {
    proc = spawnChild([pgCtl, "reload", "-D", pgdata], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      timeout: PG_CTL_TIMEOUT_MS,
      ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
    });
  } catch (err) {
    log.warn("cannot run pg_ctl reload", { pg_ctl: pgCtl, error: err });
    return;
  }
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const fields = { exit_code: code, stdout: stdout.trim(), stderr: stderr.trim() };
  if (code === 0) log.debug("pg_ctl reload done", fields);
  else log.warn("pg_ctl reload failed", fields);
}

/** Where a crashing Postgres leaves cores: PGDATA (its cwd) on Linux, /cores on macOS. */
export function coreDumpDir(pgdata: string): string {
  return process.platform === "darwin" ? "/cores" : pgdata;
}

/**
 * The core files (`core` or `core.*`) in the core dump directory for `pgdata`. A directory that
 * cannot be read gives none (logged), since this only serves diagnostics after an exit.
 */
export async function findCoreDumps(pgdata: string, dirOverride?: string): Promise<string[]> {
  const dir = dirOverride ?? coreDumpDir(pgdata);
  log.info(`checking for core dumps in ${dir}`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    // No PGDATA (a start that failed early) simply has no cores.
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    (missing ? log.debug : log.warn)(`cannot list ${dir} for core dumps`, { error: err });
    return [];
  }
  return names
    .filter((n) => n === "core" || n.startsWith("core."))
    .sort()
    .map((n) => join(dir, n));
}

const DEBUGGER_TIMEOUT_MS = 120_000;

/**
 * Logs a backtrace of each core with `gdb --batch -q -ex bt <pgbin> <core>`, or lldb when there is
 * no gdb (as the reference). Errors are only logged; each debugger run is bounded to 2 minutes.
 */
export async function logCoreDumpBacktraces(pgbin: string, cores: string[]): Promise<void> {
  for (const core of cores) {
    log.warn(`core dump found: ${core}, collecting backtrace`);
    let cmd: string[];
    if (Bun.which("gdb")) cmd = ["gdb", "--batch", "-q", "-ex", "bt", pgbin, core];
    else if (Bun.which("lldb")) {
      log.warn("cannot find gdb, trying lldb");
      cmd = ["lldb", "-c", core, "--batch", "-o", "bt all", "-o", "quit"];
    } else {
      log.warn("cannot find gdb or lldb, no backtrace", { core });
      continue;
    }
    try {
      const proc = spawnChild(cmd, {
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
        timeout: DEBUGGER_TIMEOUT_MS,
      });
      const [stdout, stderr] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      log.warn(`core dump backtrace: ${stdout}`);
      log.warn(`debugger stderr: ${stderr}`);
    } catch (err) {
      log.warn("cannot collect a backtrace", { core, error: err });
    }
  }
}
