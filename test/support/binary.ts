// The compiled compute_ctl for e2e tests. Built at most once per source state: in-process the
// promise is memoised, across processes (several `bun test` runs, or CI's `bun run build` before
// the tests) the stamp build.ts writes beside each output says whether it is up to date, and a lock
// directory keeps two processes from building the same target at once.
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { type BuildStamp, outputName, sourceKey, stampPath, type TargetName } from "../../build.ts";
import { collectStream, onExit, removeQuietly, spawnAs, TEST_TMP, userTmpDir } from "./proc.ts";

export const ROOT = resolve(import.meta.dir, "../..");
const DIST = join(ROOT, "dist");
const BUILD_TIMEOUT_MS = 5 * 60_000;

/** The build.ts target for this host. */
export function hostTarget(): TargetName {
  const arch = process.arch === "arm64" ? "arm64" : "x64";
  return process.platform === "darwin" ? `darwin-${arch}` : arch;
}

function readStamp(outfile: string): BuildStamp | null {
  try {
    const stamp = JSON.parse(readFileSync(stampPath(outfile), "utf8")) as BuildStamp;
    const st = statSync(outfile);
    // The stamp must describe this very file, not one that a later build replaced.
    return st.size === stamp.size && st.mtimeMs === stamp.mtimeMs ? stamp : null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** mkdir-based lock; a lock whose owner died (or older than the build timeout) is taken over. */
async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + BUILD_TIMEOUT_MS;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, "pid"), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let stale = false;
      try {
        const pid = Number(readFileSync(join(lockDir, "pid"), "utf8"));
        const age = Date.now() - statSync(lockDir).mtimeMs;
        stale = (pid > 0 && !pidAlive(pid)) || age > BUILD_TIMEOUT_MS;
      } catch {
        // pid file not written yet: the owner is between mkdir and write
      }
      if (stale) rmSync(lockDir, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`timed out waiting for the lock ${lockDir}`);
      else await Bun.sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

async function buildHostBinary(target: TargetName, outfile: string): Promise<BuildStamp> {
  const key = sourceKey();
  const current = readStamp(outfile);
  if (current?.key === key) return current;
  mkdirSync(DIST, { recursive: true });
  return withLock(join(DIST, `.${outputName(target)}.lock`), async () => {
    // Another process may have built it while we waited.
    const again = readStamp(outfile);
    if (again?.key === key) return again;
    // As ourselves, not spawnAs: the build writes into the checkout.
    const p = Bun.spawn(
      [process.execPath, join(ROOT, "build.ts"), "--target", target, "--outdir", DIST],
      {
        cwd: ROOT,
        stdout: "pipe",
        stderr: "pipe",
        timeout: BUILD_TIMEOUT_MS,
        killSignal: "SIGKILL",
      },
    );
    const [out, err, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    const stamp = readStamp(outfile);
    if (code !== 0 || !stamp) {
      throw new Error(`bun build.ts --target ${target} failed (exit ${code}):\n${out}${err}`);
    }
    return stamp;
  });
}

const STALE_MS = 10 * 60_000;

/** Whether some process registered under `usersDir` (one file per pid) is still alive. */
function inUse(usersDir: string): boolean {
  let names: string[];
  try {
    names = readdirSync(usersDir);
  } catch {
    return false;
  }
  return names.some((n) => /^\d+$/.test(n) && Number(n) !== process.pid && pidAlive(Number(n)));
}

/**
 * Drops this user's copies of other builds that no live process uses and nobody touched for
 * ten minutes, and copies an older version of this file left directly in the temp directory.
 * Only this user's files: another user's are none of our business, and never an error.
 */
function sweepStaleCopies(keep: string): void {
  const mine = userTmpDir();
  for (const name of readdirSync(mine)) {
    if (!name.startsWith("bin-") || join(mine, name) === keep) continue;
    const path = join(mine, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (st && Date.now() - st.mtimeMs > STALE_MS && !inUse(join(path, "users"))) {
      removeQuietly(path);
    }
  }
  const uid = process.getuid?.() ?? 0;
  for (const name of readdirSync(TEST_TMP)) {
    if (!name.startsWith("compute_ctl-bin-")) continue;
    const path = join(TEST_TMP, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (st?.uid === uid && Date.now() - st.mtimeMs > STALE_MS) removeQuietly(path);
  }
}

/**
 * Puts the binary where the postgres user can execute it (the checkout may sit under /root):
 * `<user tmp>/bin-<hash>/compute_ctl`, one per build, shared by every process of this user that
 * tests that build. A hard link when the file system allows (no extra space; build.ts always
 * writes a new file, so a rebuild never changes a running copy), else a copy. Each process
 * registers its pid under `users/`; the last one to end removes the directory.
 */
function installForTests(stamp: BuildStamp): string {
  const hash = createHash("sha256")
    .update(`${stamp.path}\0${stamp.key}\0${stamp.size}\0${stamp.mtimeMs}`)
    .digest("hex")
    .slice(0, 12);
  const dir = join(userTmpDir(), `bin-${hash}`);
  const dest = join(dir, "compute_ctl");
  const users = join(dir, "users");
  mkdirSync(users, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  // Registered before the copy is looked at, so a process ending meanwhile leaves it in place.
  writeFileSync(join(users, String(process.pid)), "");
  onExit(() => {
    removeQuietly(join(users, String(process.pid)));
    if (!inUse(users)) removeQuietly(dir);
  });
  const existing = statSync(dest, { throwIfNoEntry: false });
  if (existing?.size !== stamp.size) {
    // Linked or copied under a temporary name, then renamed: nobody executes a half-written file.
    const partial = `${dest}.partial-${process.pid}`;
    removeQuietly(partial);
    try {
      linkSync(stamp.path, partial);
    } catch {
      copyFileSync(stamp.path, partial);
    }
    chmodSync(partial, 0o755);
    renameSync(partial, dest);
  }
  const now = new Date();
  utimesSync(dir, now, now);
  sweepStaleCopies(dir);
  return dest;
}

export interface CompiledBinary {
  /** The executable copy the tests run (reachable by the postgres user). */
  path: string;
  /** What build.ts recorded: version, build tag, target, source key. */
  stamp: BuildStamp;
}

let memo: Promise<CompiledBinary> | undefined;

/** Builds (if needed) and installs the binary for this host once per process. */
export function compiledBinaryInfo(): Promise<CompiledBinary> {
  if (!memo) {
    const target = hostTarget();
    const outfile = join(DIST, outputName(target));
    memo = buildHostBinary(target, outfile).then((stamp) => ({
      path: installForTests(stamp),
      stamp,
    }));
    // A failed build is reported to every caller in this run, not retried per test file.
  }
  return memo;
}

/** Path of the compiled compute_ctl for this host, executable by the user tests run it as. */
export async function compiledBinary(): Promise<string> {
  return (await compiledBinaryInfo()).path;
}

export interface RunBinaryOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Killed (SIGKILL to its process group) after this long; default 30 s. */
  timeoutMs?: number;
  /** Another executable to run instead of compiledBinary(), e.g. a variant build. */
  binary?: string;
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/** Runs compute_ctl to completion (as postgres when root) and collects its output. */
export async function runBinary(args: string[], opts: RunBinaryOptions = {}): Promise<RunResult> {
  const bin = opts.binary ?? (await compiledBinary());
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const start = performance.now();
  const p = spawnAs([bin, ...args], { env: opts.env, cwd: opts.cwd });
  const stdout = collectStream(p.stdout, { prefix: "[compute_ctl stdout] " });
  const stderr = collectStream(p.stderr, { prefix: "[compute_ctl] " });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-p.pid, "SIGKILL");
    } catch {
      p.kill("SIGKILL");
    }
  }, timeoutMs);
  await p.exited;
  const ms = performance.now() - start;
  clearTimeout(timer);
  // A grandchild that inherited the pipes (an orphaned postmaster) may hold them open.
  await Promise.race([Promise.all([stdout.done, stderr.done]), Bun.sleep(1000)]);
  return {
    code: p.exitCode,
    signal: p.signalCode === null ? null : String(p.signalCode),
    stdout: stdout.text,
    stderr: stderr.text,
    ms,
    timedOut,
  };
}
