// Writing files so that a full disk names itself and leaves nothing half-written. A write on a
// descriptor fails without a path (`ENOSPC: no space left on device, write`), and so does Bun's
// writeFile: the path is added as `open` and `mkdir` give it, keeping the code. A file rewritten
// in place is truncated first, so a failed write would leave it empty or cut: it is written
// beside its final name and renamed over it instead.
import { rename, unlink, writeFile } from "node:fs/promises";

/** `err` with ` '<path>'` appended to its message when it is an errno error without a path. */
export function withPath(err: unknown, path: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof e.code !== "string" || e.path !== undefined) return err;
  const out = new Error(`${err.message} '${path}'`) as NodeJS.ErrnoException;
  out.code = e.code;
  out.errno = e.errno;
  out.syscall = e.syscall;
  out.path = path;
  return out;
}

/**
 * Replaces `path` with `data` (created when missing, mode 0666 less the umask): written to
 * `<path>.tmp-<pid>` and renamed, so `path` holds either its old text or the new one, never a
 * part. Errors name `path`; the temporary file is removed after a failure.
 */
export async function replaceFile(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw withPath(err, path);
  }
}

/** The local file system is full (or the user's quota is): another try would fail the same way. */
export function isDiskFull(err: unknown): boolean {
  for (let cur = err; cur instanceof Error; cur = cur.cause) {
    const code = (cur as NodeJS.ErrnoException).code;
    if (code === "ENOSPC" || code === "EDQUOT") return true;
  }
  return false;
}
