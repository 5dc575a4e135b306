// Raising RLIMIT_CORE so that a crashing Postgres leaves a core dump (the reference does
// setrlimit(CORE, INFINITY, INFINITY) at start-up; its children inherit the limit). Bun has no
// setrlimit, so it goes through libc with bun:ffi.
import { dlopen, FFIType, type Pointer, read } from "bun:ffi";

export type RaiseCoreResult = { ok: true } | { ok: false; reason: string };

interface Platform {
  libs: string[];
  /** RLIMIT_CORE: 4 on Linux (x86_64, aarch64: asm-generic) and on Darwin. */
  resource: number;
  infinity: bigint;
  errnoFn: "__errno_location" | "__error";
}

function platform(): Platform | null {
  if (process.platform === "linux") {
    // dlopen by name returns the libc already mapped into this process; musl treats any
    // "libc.*" name as itself.
    const muslArch = process.arch === "arm64" ? "aarch64" : "x86_64";
    return {
      libs: ["libc.so.6", `libc.musl-${muslArch}.so.1`],
      resource: 4,
      infinity: 0xffff_ffff_ffff_ffffn, // RLIM_INFINITY = ~0UL
      errnoFn: "__errno_location",
    };
  }
  if (process.platform === "darwin") {
    return {
      libs: ["libc.dylib", "/usr/lib/libSystem.B.dylib"],
      resource: 4,
      infinity: (1n << 63n) - 1n, // RLIM_INFINITY on Darwin
      errnoFn: "__error",
    };
  }
  return null;
}

const ERRNO_NAMES: Record<number, string> = { 1: "EPERM", 14: "EFAULT", 22: "EINVAL" };

function open(p: Platform) {
  const symbols = {
    getrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    setrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    [p.errnoFn]: { args: [], returns: FFIType.ptr },
  } as const;
  let last: unknown;
  for (const name of p.libs) {
    try {
      return dlopen(name, symbols);
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/**
 * setrlimit(RLIMIT_CORE, ∞, ∞). When the hard limit cannot be raised (EPERM: it is lower and we
 * lack CAP_SYS_RESOURCE), the soft limit is raised to the hard limit, which is the most core an
 * unprivileged process can get, and the result is not-ok with the reason. The caller logs a
 * warning and carries on: the reference exits 1 here, which turns a missing debugging aid into an
 * outage. Never throws: a platform without a usable libc is not-ok too.
 */
export function raiseCoreLimit(): RaiseCoreResult {
  const p = platform();
  if (!p) return { ok: false, reason: `setrlimit is not supported on ${process.platform}` };
  let lib: ReturnType<typeof open>;
  try {
    lib = open(p);
  } catch (err) {
    return { ok: false, reason: `cannot load libc: ${(err as Error)?.message ?? err}` };
  }
  try {
    const errno = (): string => {
      const where = lib.symbols[p.errnoFn]?.() as Pointer | null;
      const n = where ? read.i32(where, 0) : 0;
      return ERRNO_NAMES[n] ?? `errno ${n}`;
    };
    // struct rlimit { rlim_t cur, max; } with a 64-bit rlim_t on every 64-bit target Bun runs on.
    const want = new BigUint64Array([p.infinity, p.infinity]);
    if (lib.symbols.setrlimit(p.resource, want) === 0) return { ok: true };
    const why = errno();

    const cur = new BigUint64Array(2);
    if (lib.symbols.getrlimit(p.resource, cur) !== 0) {
      return { ok: false, reason: `setrlimit(RLIMIT_CORE, unlimited) failed: ${why}` };
    }
    const hard = cur[1]!;
    const hardText = hard === p.infinity ? "unlimited" : `${hard} bytes`;
    const base = `setrlimit(RLIMIT_CORE, unlimited) failed: ${why} (hard limit ${hardText})`;
    if (cur[0] === hard) return { ok: false, reason: `${base}; soft limit already at it` };
    const soft = new BigUint64Array([hard, hard]);
    if (lib.symbols.setrlimit(p.resource, soft) !== 0) {
      return { ok: false, reason: `${base}; raising the soft limit failed too: ${errno()}` };
    }
    return { ok: false, reason: `${base}; soft limit raised to the hard limit` };
  } finally {
    lib.close();
  }
}
