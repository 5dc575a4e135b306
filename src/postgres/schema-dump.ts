// A schema-only pg_dump of one database, streamed: what GET /database_schema answers with.
import { log } from "../log.ts";
import { environment } from "../testing-knobs.ts";
import { spawnChild } from "../util/spawn.ts";
import { textLines } from "../util/streams.ts";

/**
 * How a dump went. `stream` carries pg_dump's stdout from its first byte on; the failures are
 * the reference's SchemaDumpError cases: the database does not exist, pg_dump could not run or
 * wrote nothing, or --connstr lacks a host or user.
 */
export type SchemaDump =
  | { kind: "stream"; body: ReadableStream<Uint8Array> }
  | { kind: "no-database" }
  | { kind: "failed" }
  | { kind: "unexpected" };

/** The reference's SchemaDumpError texts, which the route answers with. */
export const DUMP_FAILED = "failed to execute pg_dump";
export const DUMP_UNEXPECTED = "unexpected I/O error";

/**
 * Host, port and user for pg_dump, read from --connstr as libpq would (host may be a socket dir).
 * Throws DUMP_UNEXPECTED when the host or the user is missing.
 */
export function pgDumpTarget(connstr: URL): { host: string; port: string; user: string } {
  const urlHost = decodeURIComponent(connstr.hostname.replace(/^\[(.*)\]$/, "$1"));
  const host = urlHost || connstr.searchParams.get("host") || "";
  const port = connstr.port || connstr.searchParams.get("port") || "5432";
  const user = decodeURIComponent(connstr.username) || connstr.searchParams.get("user") || "";
  if (!host || !user) throw new Error(DUMP_UNEXPECTED);
  return { host, port, user };
}

async function logRest(stderr: AsyncGenerator<string>): Promise<void> {
  try {
    for await (const line of stderr) log.warn(`pg_dump stderr: ${line}`);
  } catch {
    // pg_dump went away; nothing more to log.
  }
}

/**
 * Runs `pg_dump --schema-only` for `dbname`. The name goes in PGDATABASE, never on the command
 * line, so names with `=` or spaces are not read as a conninfo string. Nothing is returned until
 * pg_dump has written something: a dump that produces no output is `no-database` when its first
 * stderr line says the database does not exist, `failed` otherwise.
 */
export async function dumpSchema(
  pgDump: string,
  connstr: URL,
  dbname: string,
): Promise<SchemaDump> {
  let target: ReturnType<typeof pgDumpTarget>;
  try {
    target = pgDumpTarget(connstr);
  } catch {
    return { kind: "unexpected" };
  }
  const { host, port, user } = target;
  let proc: ReturnType<typeof spawnDump>;
  try {
    proc = spawnDump(pgDump, host, port, user, dbname);
  } catch (err) {
    log.warn(`cannot run ${pgDump}: ${err instanceof Error ? err.message : String(err)}`);
    return { kind: "failed" };
  }
  const stderr = textLines(proc.stderr);
  const stdout = proc.stdout.getReader();
  let first: Uint8Array | undefined;
  try {
    for (;;) {
      const r = await stdout.read();
      if (r.done) break;
      if (r.value.byteLength > 0) {
        first = r.value;
        break;
      }
    }
  } catch {
    proc.kill();
    void logRest(stderr);
    return { kind: "failed" };
  }
  if (first === undefined) {
    const line = await stderr.next().catch(() => ({ done: true as const, value: undefined }));
    if (!line.done) {
      if (line.value.includes(`FATAL:  database "${dbname}" does not exist`)) {
        void logRest(stderr);
        return { kind: "no-database" };
      }
      log.warn(`pg_dump stderr: ${line.value}`);
    }
    void logRest(stderr);
    return { kind: "failed" };
  }
  void logRest(stderr);
  const head = first;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(head);
    },
    async pull(controller) {
      try {
        const r = await stdout.read();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      } catch (err) {
        controller.error(err);
      }
    },
    cancel() {
      // The client went away: stop pg_dump rather than let it run to the end.
      proc.kill();
      void stdout.cancel().catch(() => {});
    },
  });
  return { kind: "stream", body };
}

function spawnDump(pgDump: string, host: string, port: string, user: string, dbname: string) {
  return spawnChild([pgDump, "--host", host, "--port", port, "--username", user, "--schema-only"], {
    env: { ...environment.all(), PGDATABASE: dbname },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
}
