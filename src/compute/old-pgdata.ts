// Wiping PGDATA without waiting for the deletion: the old directory is renamed aside into a
// hidden sibling (same parent, so the same filesystem: one atomic rename) and removed in the
// background, so the path is free for the new, empty PGDATA at once. Postgres never sees the
// sibling: it only ever opens PGDATA. A sibling left behind by a compute_ctl that died before its
// deletion finished is removed at the next wipe. When the rename is impossible (PGDATA is a
// mount point, the parent is not writable), the directory is removed in place, as before.
import { readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";

/** `.<name>.discarded-<pid>-<ms>`: hidden, and naming what it is and who made it. */
const MARK = ".discarded-";

function asideName(pgdata: string): string {
  return join(dirname(pgdata), `.${basename(pgdata)}${MARK}${process.pid}-${Date.now()}`);
}

/** Whether `name` (an entry of PGDATA's parent) is a discarded copy of `pgdata`. */
export function isDiscarded(pgdata: string, name: string): boolean {
  const prefix = `.${basename(resolve(pgdata))}${MARK}`;
  return name.startsWith(prefix) && /^\d+-\d+$/.test(name.slice(prefix.length));
}

const pending = new Set<Promise<void>>();

/** Resolves when every background deletion started so far has ended (for tests and exit). */
export async function discardsSettled(): Promise<void> {
  while (pending.size > 0) await Promise.all(pending);
}

function track(p: Promise<void>): void {
  pending.add(p);
  void p.finally(() => pending.delete(p));
}

function removeInBackground(path: string): void {
  const t0 = performance.now();
  track(
    rm(path, { recursive: true, force: true }).then(
      () => log.debug(`removed ${path} in ${Math.round(performance.now() - t0)} ms`),
      (err) => log.warn(`could not remove ${path}: ${formatOneLine(err)}`),
    ),
  );
}

/** Deletes, in the background, the discarded copies of `path` other than `aside`. */
async function removeLeftovers(path: string, aside: string): Promise<void> {
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of names) {
    const p = join(dirname(path), name);
    if (p === aside || !isDiscarded(path, name)) continue;
    log.info(`removing ${p}, left by an earlier run`);
    removeInBackground(p);
  }
}

/**
 * Leaves `pgdata` absent: renamed aside and deleted in the background, or (when it cannot be
 * renamed) removed in place. Errors of the in-place removal are ignored, as the reference ignores
 * them: the creation of the new directory reports what matters. Discarded siblings of earlier
 * runs are deleted in the background as well.
 */
export async function discardPgdata(pgdata: string): Promise<void> {
  const path = resolve(pgdata);
  const aside = asideName(path);
  let renamed = false;
  try {
    await rename(path, aside);
    renamed = true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") {
      log.debug(`cannot move ${path} aside (${code ?? String(err)}): removing it in place`);
      await rm(path, { recursive: true, force: true }).catch(() => {});
    }
  }
  track(removeLeftovers(path, aside));
  if (renamed) removeInBackground(aside);
}
