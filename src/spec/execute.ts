// The executor: runs a Plan. Every statement is its own autocommit simple-protocol query (DROP
// DATABASE refuses to run in a transaction block), the statements of a phase are pipelined on one
// connection, and database tasks run in parallel up to a limit. A database task connects only if
// it has statements, which the planner guarantees by leaving empty tasks out. The task of a
// database the plan creates starts as soon as its creation has succeeded, beside the rest of the
// main phases (the CREATE DATABASE stream keeps one backend busy; the tasks use the others).
import type { Sql } from "postgres";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { localClient } from "../postgres/client.ts";
import type { DatabaseTask, Phase, Plan, Statement } from "./plan.ts";
import { pool } from "./pool.ts";

export const APPLY_APPLICATION_NAME = "compute_ctl:apply_config";

export interface ExecuteOptions {
  connstr: URL;
  /** Database tasks running at once (at least 1). */
  concurrency: number;
  /** The maintenance connection, already connected to the system database. */
  main: Sql;
  applicationName?: string;
  /** More `-c` options for the per-database connections (see LocalConnectOptions). */
  extraOptions?: string;
  /** Called for every statement that fails, not only the first of its phase. */
  onStatementError?: (err: unknown) => void;
}

export interface ExecuteReport {
  statements: number;
  /** Connections opened for database tasks (the main one not counted). */
  connections: number;
}

/** A connection to one database with the maintenance options (names of any form work). */
export function databaseClient(
  connstr: URL,
  database: string,
  applicationName: string,
  extraOptions?: string,
): Sql {
  return localClient(connstr, { applicationName, database, extraOptions });
}

/**
 * Sends every statement of the phase at once and waits for all of them; the first failure (in
 * statement order) is the phase's error. Later statements were already sent and still ran, as in
 * the reference; each is written to be idempotent, so a retry converges.
 */
async function runPhase(
  sql: Sql,
  p: Phase,
  where: string,
  onError?: (err: unknown) => void,
  onSettled?: (s: Statement, ok: boolean) => void,
): Promise<number> {
  log.debug(`applying phase ${p.name}${where}`, { statements: p.statements.length });
  const results = await Promise.allSettled(
    p.statements.map((s) => {
      const q = sql.unsafe(s.sql).simple();
      if (!onSettled) return q;
      return q.then(
        (rows) => {
          onSettled(s, true);
          return rows;
        },
        (err) => {
          onSettled(s, false);
          throw err;
        },
      );
    }),
  );
  if (onError) {
    for (const r of results) if (r.status === "rejected") onError(r.reason);
  }
  const failed = results.findIndex((r) => r.status === "rejected");
  if (failed >= 0) {
    const stmt = p.statements[failed]!;
    const reason = (results[failed] as PromiseRejectedResult).reason;
    throw new Error(
      `phase ${p.name}${where} failed${stmt.comment ? ` (${stmt.comment})` : ""}: ${formatOneLine(reason)}`,
      { cause: reason },
    );
  }
  return p.statements.length;
}

export async function executePlan(plan: Plan, opts: ExecuteOptions): Promise<ExecuteReport> {
  const appName = opts.applicationName ?? APPLY_APPLICATION_NAME;
  const limit = Math.max(1, Math.floor(opts.concurrency));
  const report: ExecuteReport = { statements: 0, connections: 0 };
  for (const w of plan.warnings) log.warn(w);
  const closing: Promise<unknown>[] = [];

  const runTask = async (task: DatabaseTask) => {
    // The system database's task shares the main connection, idle while tasks run.
    // `x += await …` would read x before the await and lose parallel tasks' counts.
    const count = (n: number) => {
      report.statements += n;
    };
    if (task.database === null) {
      for (const p of task.phases) count(await runPhase(opts.main, p, "", opts.onStatementError));
      return;
    }
    const where = ` in database ${task.database}`;
    const sql = databaseClient(opts.connstr, task.database, appName, opts.extraOptions);
    report.connections++;
    try {
      // Pipelined ahead of the first phase: compute_ctl's own DDL is not forwarded.
      await sql.unsafe("SET neon.forward_ddl = false").simple();
      for (const p of task.phases) count(await runPhase(sql, p, where, opts.onStatementError));
    } finally {
      // Closing does not hold the task's slot; executePlan waits for every close before it returns.
      closing.push(sql.end({ timeout: 5 }).catch(() => {}));
    }
  };

  try {
    const preDropErrors = await pool(plan.preDrop, limit, runTask);
    for (const err of preDropErrors) {
      // On a retry the database may already be gone; the drop itself is IF EXISTS.
      if (formatOneLine(err).includes("does not exist")) log.warn(formatOneLine(err));
      else throw err;
    }

    // The per-database tasks wait for a go: a task whose database this plan creates as soon as
    // that creation has succeeded, the others once every main phase has. A failed main phase
    // calls off every task not yet started (those already running finish).
    const mainDone = Promise.withResolvers<boolean>();
    const gates = new Map<Statement, PromiseWithResolvers<boolean>>();
    for (const t of plan.perDatabase) {
      if (t.startsAfter) gates.set(t.startsAfter, Promise.withResolvers<boolean>());
    }
    const goFor = (t: DatabaseTask) =>
      (t.startsAfter && gates.get(t.startsAfter)?.promise) || mainDone.promise;
    // Early tasks first, in creation order, so that no slot waits behind a late one.
    const ordered = [
      ...plan.perDatabase.filter((t) => t.startsAfter),
      ...plan.perDatabase.filter((t) => !t.startsAfter),
    ];
    // While the main phases run, early tasks run one at a time: the CREATE DATABASE stream is the
    // apply's critical path, and a wider fan-out would only take CPU and disk from it.
    let mainRunning = true;
    let early = Promise.resolve();
    const oneAtATime = (task: DatabaseTask) => {
      const run = early.then(() => runTask(task));
      early = run.then(
        () => {},
        () => {},
      );
      return run;
    };
    const perDatabase = pool(ordered, limit, async (task) => {
      if (!(await goFor(task))) return;
      await (mainRunning && task.startsAfter ? oneAtATime(task) : runTask(task));
    });
    const onSettled = (s: Statement, ok: boolean) => gates.get(s)?.resolve(ok);
    try {
      for (const p of plan.main) {
        report.statements += await runPhase(opts.main, p, "", opts.onStatementError, onSettled);
      }
      mainRunning = false;
      mainDone.resolve(true);
    } catch (err) {
      mainRunning = false;
      mainDone.resolve(false);
      for (const g of gates.values()) g.resolve(false);
      await perDatabase;
      throw err;
    }

    const errors = await perDatabase;
    if (errors.length > 0) throw errors[0];

    for (const p of plan.final) {
      report.statements += await runPhase(opts.main, p, "", opts.onStatementError);
    }
    return report;
  } finally {
    await Promise.all(closing);
  }
}
