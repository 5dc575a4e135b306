// pgaudit's log files (<pgdata>/log/audit*.log, rotated every 5 minutes) are shipped by rsyslog
// and then only take space: every minute the ones not modified for 15 minutes are deleted (the
// whole tree, as `find -name 'audit*.log' -mmin +15 -delete`), and the directory's size is
// published as compute_audit_log_dir_size.
import { lstat, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";

const MAX_AGE_MS = 15 * 60_000;

function isAuditLog(name: string): boolean {
  return name.startsWith("audit") && name.endsWith(".log");
}

const listTree = (dir: string) => readdir(dir, { withFileTypes: true, recursive: true });

/** Deletes audit*.log files under `dir` last modified more than 15 minutes before `now`. */
export async function deleteOldAuditLogs(dir: string, now = Date.now()): Promise<string[]> {
  const deleted: string[] = [];
  let entries: Awaited<ReturnType<typeof listTree>>;
  try {
    entries = await listTree(dir);
  } catch (err) {
    // Postgres has not written a log yet.
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return deleted;
    throw err;
  }
  for (const e of entries) {
    if (!isAuditLog(e.name) || e.isDirectory()) continue;
    const path = join(e.parentPath, e.name);
    try {
      const st = await lstat(path);
      if (now - st.mtimeMs > MAX_AGE_MS) {
        await rm(path, { force: true });
        deleted.push(path);
      }
    } catch {
      // gone meanwhile
    }
  }
  return deleted;
}

/** Total size of the regular files directly in `dir` whose name ends with "log". */
export async function logDirSize(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    if (!name.endsWith("log")) continue;
    const st = await stat(join(dir, name)).catch(() => null);
    if (st?.isFile()) total += st.size;
  }
  return total;
}

export interface AuditGcOptions {
  logDirectory: string;
  intervalMs: number;
  /** Receives the directory's size after each round (0 when it could not be measured). */
  setSize(bytes: number): void;
}

/** Runs a round at once, then one every `intervalMs`, until stopped. */
export function startAuditGc(opts: AuditGcOptions): { stop(): void } {
  log.info("running pgaudit GC main loop");
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const round = async () => {
    try {
      const deleted = await deleteOldAuditLogs(opts.logDirectory);
      if (deleted.length > 0) log.info(`deleted ${deleted.length} old pgaudit log files`);
    } catch (err) {
      log.warn(`could not delete old pgaudit logs: ${formatOneLine(err)}`);
    }
    let size = 0;
    try {
      size = await logDirSize(opts.logDirectory);
    } catch (err) {
      log.warn(`Failed to get log directory size: ${formatOneLine(err)}`);
    }
    opts.setSize(size);
    if (!stopped) timer = setTimeout(round, opts.intervalMs);
  };
  void round();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
