// Running processes in tests as the right user. Postgres refuses to run as root and CI runs as
// root, so when the test process is root every child runs as the `postgres` user (override with
// TEST_RUN_AS_USER), from directories that user owns. Every child is tracked and killed by
// `killAll()` / `cleanup()`; call one from an afterAll in each test file that spawns.
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

const RUN_AS_USER = process.env.TEST_RUN_AS_USER || "postgres";

interface Identity {
  uid: number;
  gid: number;
  home: string;
}

function lookupUser(name: string): Identity | null {
  const r = Bun.spawnSync(["getent", "passwd", name], { stdout: "pipe", stderr: "ignore" });
  const fields = r.success ? r.stdout.toString().trim().split(":") : [];
  if (fields.length < 6) return null;
  return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] || "/tmp" };
}

function resolveRunAs(): Identity | null {
  if (process.getuid?.() !== 0) return null;
  const id = lookupUser(RUN_AS_USER);
  if (!id) {
    throw new Error(
      `tests run as root but there is no '${RUN_AS_USER}' user to run Postgres as: ` +
        "apt-get install postgresql-15 (it creates one), or run the tests as a non-root user",
    );
  }
  return id;
}

const identity = resolveRunAs();

/** Who children run as: the postgres user's ids when the test process is root, else null. */
export const RUN_AS: { uid: number; gid: number } | null = identity
  ? { uid: identity.uid, gid: identity.gid }
  : null;

/** Where test directories and binaries go: /tmp, since the checkout may sit under /root. */
export const TEST_TMP: string = RUN_AS ? "/tmp" : tmpdir();

/**
 * Whether `dir` is a directory only `uid` can change: not a symlink, owned by `uid`, not
 * writable by group or others. Anything else in a shared temp directory may be another user's.
 */
export function ownedPrivately(dir: string, uid: number): boolean {
  const st = lstatSync(dir, { throwIfNoEntry: false });
  return !!st && st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0;
}

let userTmp: string | undefined;
let userTmpIsFallback = false;

/**
 * This user's directory for artefacts kept across runs (the binary copy, template caches, the
 * relocated Postgres tree): `<TEST_TMP>/compute_ctl-<uid>`, mode 0755 so the postgres user can
 * read and execute what root puts there, writable by its owner only. Nothing in it belongs to
 * another user, so cleaning it up never touches their files. When that name is taken by someone
 * else, a private directory for this process is used instead (removed at exit).
 */
export function userTmpDir(): string {
  if (userTmp) return userTmp;
  const uid = process.getuid?.() ?? 0;
  const dir = join(TEST_TMP, `compute_ctl-${uid}`);
  try {
    mkdirSync(dir, { mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  if (ownedPrivately(dir, uid)) {
    chmodSync(dir, 0o755);
    userTmp = dir;
  } else {
    userTmp = mkdtempSync(join(TEST_TMP, `compute_ctl-${uid}-`));
    chmodSync(userTmp, 0o755);
    userTmpIsFallback = true;
  }
  return userTmp;
}

/** Removes `path` if it can; another user's file or a vanished one is not an error. */
export function removeQuietly(path: string): boolean {
  try {
    rmSync(path, { recursive: true, force: true });
    return true;
  } catch {
    return false;
  }
}

const VERBOSE = !!process.env.TEST_VERBOSE;

// A number is an open file descriptor the child writes to (e.g. a log file).
type Stdio = "pipe" | "inherit" | "ignore" | number;

export interface SpawnAsOptions<Out extends Stdio = "pipe", Err extends Stdio = "pipe"> {
  /** Added to the test process's environment; an undefined value removes a variable. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  stdin?: Stdio;
  stdout?: Out;
  stderr?: Err;
  /** Own process group (default true), so killAll also reaches grandchildren such as postmaster. */
  detached?: boolean;
}

/**
 * Bun.spawn as RUN_AS when root. The environment is the test process's plus `env`; for a switched
 * user HOME/USER/LOGNAME are theirs and the default cwd is /tmp (root's cwd may be unreadable).
 * stdout/stderr default to "pipe". The process is tracked for killAll().
 */
export function spawnAs<Out extends Stdio = "pipe", Err extends Stdio = "pipe">(
  cmd: string[],
  opts: SpawnAsOptions<Out, Err> = {},
): Subprocess<Stdio, Out, Err> {
  const env: Record<string, string | undefined> = { ...process.env };
  if (identity) {
    env.HOME = identity.home;
    env.USER = RUN_AS_USER;
    env.LOGNAME = RUN_AS_USER;
  }
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const p = Bun.spawn(cmd, {
    env,
    cwd: opts.cwd ?? (RUN_AS ? TEST_TMP : undefined),
    stdin: opts.stdin ?? "ignore",
    stdout: opts.stdout ?? ("pipe" as Out),
    stderr: opts.stderr ?? ("pipe" as Err),
    detached: opts.detached ?? true,
    ...(RUN_AS ? { uid: RUN_AS.uid, gid: RUN_AS.gid } : {}),
  });
  return trackProcess(p, opts.detached ?? true);
}

interface Tracked {
  proc: Subprocess;
  /** Signals go to the whole group when the child leads one. */
  group: boolean;
}

const tracked = new Set<Tracked>();

/** Live (non-zombie) members of process group `pgid`, or null when /proc cannot tell. */
function groupMembers(pgid: number): number[] | null {
  if (process.platform !== "linux") return null;
  const members: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // "pid (comm) state ppid pgrp ...": comm may contain spaces and parens.
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") members.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return members;
}

/**
 * Registers a process for killAll(); returns it. spawnAs does this already. `group`: the child
 * leads its own process group (spawned detached), so signals go to the group.
 */
export function trackProcess<T extends Subprocess>(proc: T, group = false): T {
  const entry: Tracked = { proc, group };
  tracked.add(entry);
  // A group outlives its leader (an orphaned postmaster), so only ungrouped children are dropped.
  if (!group) void proc.exited.then(() => tracked.delete(entry));
  return proc;
}

function exited(proc: Subprocess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

function signal(entry: Tracked, sig: NodeJS.Signals, group: boolean): void {
  try {
    if (group && entry.group) process.kill(-entry.proc.pid, sig);
    else if (!exited(entry.proc)) entry.proc.kill(sig);
  } catch {
    // ESRCH: already gone.
  }
}

function alive(entry: Tracked): boolean {
  if (!entry.group) return !exited(entry.proc);
  const members = groupMembers(entry.proc.pid);
  if (members) return members.length > 0;
  try {
    process.kill(-entry.proc.pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops every tracked process: SIGTERM to the child itself (compute_ctl then stops Postgres
 * cleanly), after `graceMs` SIGQUIT to its group (Postgres's immediate shutdown, which still
 * frees shared memory), after one more second SIGKILL to whatever is left.
 */
export async function killAll(graceMs = 3000): Promise<void> {
  const entries = [...tracked];
  tracked.clear();
  if (entries.length === 0) return;
  for (const e of entries) signal(e, "SIGTERM", false);
  const settle = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && entries.some(alive)) await Bun.sleep(25);
  };
  await settle(graceMs);
  for (const e of entries) if (alive(e)) signal(e, "SIGQUIT", true);
  await settle(1000);
  for (const e of entries) if (alive(e)) signal(e, "SIGKILL", true);
  await Promise.all(entries.map((e) => e.proc.exited.catch(() => undefined)));
}

const dirs = new Set<string>();

/**
 * A fresh directory (mode 0755) under TEST_TMP, owned by RUN_AS when root, removed by cleanup()
 * unless TEST_KEEP_DIRS is set. Name: <tmp>/compute_ctl-test-<prefix>XXXXXX.
 */
export async function makeUserDir(prefix = ""): Promise<string> {
  const dir = mkdtempSync(join(TEST_TMP, `compute_ctl-test-${prefix}`));
  chmodSync(dir, 0o755);
  if (RUN_AS) chownSync(dir, RUN_AS.uid, RUN_AS.gid);
  dirs.add(dir);
  return dir;
}

/** killAll(), then removes the directories made by makeUserDir(). Meant for afterAll. */
export async function cleanup(): Promise<void> {
  await killAll();
  if (process.env.TEST_KEEP_DIRS) {
    if (dirs.size) console.error(`kept test directories: ${[...dirs].join(" ")}`);
  } else {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  dirs.clear();
}

// Last resort when a test file forgot its afterAll or the run is aborted: nothing may outlive
// the test process. Synchronous because "exit" handlers cannot wait.
process.on("exit", () => {
  for (const e of tracked) signal(e, "SIGKILL", true);
  if (!process.env.TEST_KEEP_DIRS) {
    for (const d of dirs) removeQuietly(d);
  }
  runExitHooks();
});

const exitHooks: (() => void)[] = [];

/**
 * Runs `fn` (synchronously) when the process ends: on process exit, and at the end of a
 * `bun test` run (test/preload.ts calls runExitHooks from a global afterAll, because bun test
 * does not emit "exit").
 */
export function onExit(fn: () => void): void {
  exitHooks.push(fn);
}

/** Runs and forgets the onExit hooks; safe to call more than once. */
export function runExitHooks(): void {
  for (const hook of exitHooks.splice(0)) {
    try {
      hook();
    } catch {
      // best effort: the process is ending
    }
  }
  if (userTmpIsFallback && userTmp) removeQuietly(userTmp);
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Finishes "timed out after N ms waiting for <what>". */
  what: string;
}

/**
 * Polls `fn` until it returns something other than undefined, null or false, and returns that.
 * A throw counts as "not yet"; the last one becomes the timeout error's cause.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  { timeoutMs = 10_000, intervalMs = 50, what }: WaitForOptions,
): Promise<T> {
  const start = Date.now();
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() - start >= timeoutMs) {
      const why = lastError ? `; last error: ${(lastError as Error)?.message ?? lastError}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`, {
        cause: lastError,
      });
    }
    await Bun.sleep(intervalMs);
  }
}

/** A child's output accumulated while it runs. */
export class StreamBuffer {
  text = "";
  ended = false;
  /** Resolves when the stream has ended (never rejects). */
  readonly done: Promise<void>;
  private listeners = new Set<() => void>();

  constructor(
    stream: ReadableStream<Uint8Array> | null | undefined,
    private readonly echoPrefix?: string,
    /** Keep only about the last this many characters (a long run's output); default all. */
    private readonly tailChars?: number,
  ) {
    this.done = stream ? this.pump(stream) : Promise.resolve(this.finish());
  }

  private async pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stream) this.append(decoder.decode(chunk, { stream: true }));
      this.append(decoder.decode());
    } catch {
      // The child went away mid-read; what we have is what there is.
    }
    this.finish();
  }

  private append(s: string): void {
    if (!s) return;
    this.text += s;
    if (this.tailChars !== undefined && this.text.length > 2 * this.tailChars) {
      this.text = this.text.slice(-this.tailChars);
    }
    if (this.echoPrefix !== undefined) {
      process.stderr.write(
        s.replace(/^(?=.)/gm, this.echoPrefix), // prefix each line start
      );
    }
    for (const l of this.listeners) l();
  }

  private finish(): void {
    this.ended = true;
    for (const l of this.listeners) l();
  }

  /** Called on every new chunk and at the end. Returns an unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  lines(): string[] {
    return this.text.split("\n").filter((l) => l !== "");
  }
}

/**
 * Starts reading `stream` into a StreamBuffer. With TEST_VERBOSE set (or `echo`), the output is
 * also copied to stderr with `prefix` before each line.
 */
export function collectStream(
  stream: ReadableStream<Uint8Array> | number | null | undefined,
  opts: { echo?: boolean; prefix?: string; tailChars?: number } = {},
): StreamBuffer {
  const echo = opts.echo ?? VERBOSE;
  return new StreamBuffer(
    typeof stream === "object" ? stream : null,
    echo ? (opts.prefix ?? "") : undefined,
    opts.tailChars,
  );
}

/**
 * Resolves with the first match of `regex` against a line of the buffer (already there or
 * arriving; the unfinished last line counts too). Rejects on timeout or when
 * the stream ends without a match, quoting the output's tail.
 */
export function waitForLine(
  buffer: StreamBuffer,
  regex: RegExp,
  timeoutMs = 10_000,
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const tail = () => {
      const t = buffer.text.slice(-2000);
      return t ? `; output so far (tail):\n${t}` : "; no output";
    };
    let unsubscribe = () => {};
    const timer = setTimeout(() => {
      unsubscribe();
      reject(
        new Error(`timed out after ${timeoutMs} ms waiting for a line matching ${regex}${tail()}`),
      );
    }, timeoutMs);
    const check = (): boolean => {
      for (const line of buffer.text.split("\n")) {
        regex.lastIndex = 0;
        const m = line.match(regex);
        if (m) {
          clearTimeout(timer);
          unsubscribe();
          resolve(m);
          return true;
        }
      }
      if (buffer.ended) {
        clearTimeout(timer);
        unsubscribe();
        reject(new Error(`output ended without a line matching ${regex}${tail()}`));
        return true;
      }
      return false;
    };
    if (!check()) unsubscribe = buffer.onChange(check);
  });
}

/**
 * A file the child user can run with bun for the script at `path`. Not root: the script itself.
 * Root: the script bundled (its imports included) into a fresh test directory, because the
 * checkout may be unreadable for the postgres user (a clone under /root, or in a `mktemp -d`).
 */
export async function scriptForChild(path: string): Promise<string> {
  if (!RUN_AS) return path;
  const outdir = await makeUserDir("script-");
  const built = await Bun.build({ entrypoints: [path], target: "bun", outdir });
  const out = built.outputs[0]?.path;
  if (!built.success || !out) {
    throw new Error(`bundling ${path} failed: ${built.logs.map(String).join("; ")}`);
  }
  chmodSync(out, 0o644);
  return out;
}
