// The tasks that must finish before Postgres starts run concurrently (PGDATA, remote-extension
// preload, the TLS files, swap, disk quota, the log exports). All are waited for, also when one
// fails, so nothing is still writing when the failure is reported; the first failure is thrown.
// Each task's duration is logged, and the one that finished last is the one Postgres waited on.
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { elapsedMs } from "../util/clock.ts";

export interface PreStartTask {
  name: string;
  run(): Promise<unknown>;
}

export interface PreStartTimings {
  /** Milliseconds per task, in the order the tasks were given. */
  tasks: Record<string, number>;
  /** The task that finished last (null when there were none). */
  waitedOn: string | null;
  totalMs: number;
}

export async function runPreStartTasks(tasks: PreStartTask[]): Promise<PreStartTimings> {
  const t0 = performance.now();
  const durations: Record<string, number> = {};
  let last: string | null = null;
  let firstError: { name: string; err: unknown } | null = null;
  await Promise.all(
    tasks.map(async (task) => {
      const start = performance.now();
      try {
        await task.run();
      } catch (err) {
        firstError ??= { name: task.name, err };
      } finally {
        durations[task.name] = elapsedMs(start);
        last = task.name;
      }
    }),
  );
  const ordered: Record<string, number> = {};
  for (const t of tasks) ordered[t.name] = durations[t.name] ?? 0;
  const timings = { tasks: ordered, waitedOn: last, totalMs: elapsedMs(t0) };
  const parts = tasks.map((t) => `${t.name} ${ordered[t.name]} ms`).join(", ");
  log.info(
    `pre-start tasks finished in ${timings.totalMs} ms: ${parts}; Postgres waited on ${last ?? "nothing"}`,
  );
  if (firstError) {
    const { name, err } = firstError;
    if (tasks.length > 1) log.debug(`pre-start task ${name} failed: ${formatOneLine(err)}`);
    throw err;
  }
  return timings;
}
