// Pid files that their owner holds with flock(2) (local_proxy does; pgbouncer does not): whether
// the file is there, whether another process holds its lock, and the pid written in it. The
// lock is probed as flock(LOCK_EX | LOCK_NB) on a read-only descriptor, released at once by
// closing it; node:fs has no flock, so it comes from libc through bun:ffi.
import { closeSync, openSync, readFileSync } from "node:fs";

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

interface Libc {
  flock(fd: number, op: number): number;
  errno(): number;
}

let libc: Libc | null = null;

async function loadLibc(): Promise<Libc> {
  if (libc) return libc;
  const { dlopen, FFIType, read } = await import("bun:ffi");
  const lib = dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
  libc = {
    flock: (fd, op) => lib.symbols.flock(fd, op),
    errno: () => {
      const p = lib.symbols.__errno_location();
      return p === null ? 0 : read.i32(p, 0);
    },
  };
  return libc;
}

export type PidFileState =
  | { kind: "missing" }
  /** Nobody holds the lock: the owner is not running. */
  | { kind: "unlocked"; content: string }
  /** Another process holds the lock; `pid` is what the file says (null when it says no number). */
  | { kind: "locked"; content: string; pid: number | null };

function parsePid(content: string): number | null {
  const t = content.trim();
  return /^[0-9]+$/.test(t) && Number(t) > 0 ? Number(t) : null;
}

/** The state of the pid file at `path`. */
export async function readPidFile(path: string): Promise<PidFileState> {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    throw new Error(`could not open ${path}`, { cause: err });
  }
  try {
    const c = await loadLibc();
    const locked = c.flock(fd, LOCK_EX | LOCK_NB) !== 0;
    if (locked) {
      const errno = c.errno();
      if (errno !== EWOULDBLOCK) throw new Error(`flock ${path} failed with errno ${errno}`);
    }
    // Read after the probe, so an unlocked file's content is the settled one.
    const content = readFileSync(path, "utf8");
    return locked
      ? { kind: "locked", content, pid: parsePid(content) }
      : { kind: "unlocked", content };
  } finally {
    closeSync(fd);
  }
}

/** The pid in the file at `path`, read without looking at locks; null when there is none. */
export function pidInFile(path: string): number | null {
  try {
    return parsePid(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
}
