// GET /dbs_and_roles and GET /database_schema?database= (http.md §6.4, §6.5): what the local
// Postgres holds, read from its catalogs, and a schema-only pg_dump of one database, streamed.
// Neither is gated on the compute status; both fail when Postgres cannot be reached.
//
// Also the error renderings the SQL-running routes share, in the reference's wording
// (tokio-postgres and Rust io::Error Display), so their 500 texts read like the reference's.
import { constants } from "node:os";
import { Elysia } from "elysia";
import postgres from "postgres";
import type { CatalogDatabase, CatalogObjects } from "../../api/requests.ts";
import type { Role } from "../../api/spec.ts";
import { log } from "../../log.ts";
import { localClient } from "../../postgres/client.ts";
import { HttpError, jsonResponse, RejectionError } from "../app.ts";

// Rust's io::Error Display for the errno values these routes can meet.
const OS_ERROR_TEXTS: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EEXIST: "File exists",
  ENAMETOOLONG: "File name too long",
  ENOTSOCK: "Socket operation on non-socket",
  ECONNREFUSED: "Connection refused",
  ECONNRESET: "Connection reset by peer",
  ETIMEDOUT: "Connection timed out",
  EHOSTUNREACH: "No route to host",
  ENETUNREACH: "Network is unreachable",
  EPIPE: "Broken pipe",
  ENOTDIR: "Not a directory",
};

/** `Connection refused (os error 111)` for an error with `code: "ECONNREFUSED"`; null if unknown. */
export function osErrorText(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return null;
  const errno = (constants.errno as Record<string, number>)[code];
  const text = OS_ERROR_TEXTS[code];
  if (errno === undefined || text === undefined) return null;
  return `${text} (os error ${errno})`;
}

/**
 * A Postgres client error as tokio-postgres displays it: `db error: ERROR: <message>` (with
 * DETAIL/HINT lines) for a server error, `error connecting to server: <io error>` for a failed
 * connect, the plain message otherwise.
 */
export function postgresErrorText(err: unknown): string {
  if (err instanceof postgres.PostgresError) {
    let text = `db error: ${err.severity}: ${err.message}`;
    if (err.detail) text += `\nDETAIL: ${err.detail}`;
    if (err.hint) text += `\nHINT: ${err.hint}`;
    return text;
  }
  const io = osErrorText(err);
  if (io !== null) return `error connecting to server: ${io}`;
  if ((err as { code?: unknown } | null)?.code === "CONNECT_TIMEOUT") {
    return "timeout waiting for server";
  }
  return err instanceof Error ? err.message : String(err);
}

// SQLSTATEs Postgres answers a connection attempt with (bad login, no such database, not
// accepting connections yet or any more, too many clients).
const CONNECT_SQLSTATES = /^(08|28|3D|57P0[1-3]|53300)/;

/**
 * Whether a postgres.js error means the connection could not be made, rather than a statement
 * failed. (postgres.js connects lazily on the first statement, and its reserve() hangs without
 * type fetching, so connect failures are told apart by what they are.)
 */
/**
 * A `.catch` handler for a statement of a route: `<what failed>: <Postgres error>`, or "Failed
 * to connect to the database" when the statement's implicit connect is what failed.
 */
export function stepFailed(what: string): (err: unknown) => never {
  return (err) => {
    const step = isConnectError(err) ? "Failed to connect to the database" : what;
    throw new Error(`${step}: ${postgresErrorText(err)}`, { cause: err });
  };
}

export function isConnectError(err: unknown): boolean {
  if (err instanceof postgres.PostgresError) return CONNECT_SQLSTATES.test(err.code);
  const code = (err as { code?: unknown } | null)?.code;
  return osErrorText(err) !== null || code === "CONNECT_TIMEOUT" || code === "ENOTFOUND";
}

/** Every role from pg_authid (built-ins included) and every database, as the reference lists them. */
export async function getDbsAndRoles(connstr: URL): Promise<CatalogObjects> {
  const sql = localClient(connstr, { applicationName: "compute_ctl:get_dbs_and_roles" });
  try {
    const roleRows = await sql.unsafe<{ rolname: string; rolpassword: string | null }[]>(
      "SELECT rolname, rolpassword FROM pg_catalog.pg_authid",
    );
    // The owner comes from a subselect rather than datdba::regrole, which would quote odd names.
    const dbRows = await sql.unsafe<
      { name: string; owner: string; restrict_conn: boolean; invalid: boolean }[]
    >(
      `SELECT datname AS name,
              (SELECT rolname FROM pg_catalog.pg_roles WHERE oid OPERATOR(pg_catalog.=) datdba) AS owner,
              NOT datallowconn AS restrict_conn,
              datconnlimit OPERATOR(pg_catalog.=) (OPERATOR(pg_catalog.-) 2) AS invalid
         FROM pg_catalog.pg_database`,
    );
    const roles: Role[] = roleRows.map((r) => ({
      name: r.rolname,
      encrypted_password: r.rolpassword,
      options: null,
    }));
    const databases: CatalogDatabase[] = dbRows.map((d) => ({
      name: d.name,
      owner: d.owner,
      options: null,
      restrict_conn: d.restrict_conn,
      invalid: d.invalid,
    }));
    return { roles, databases };
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** `?database=NAME` as serde_urlencoded reads it: required, once. */
export function databaseParam(url: string): string {
  const q = url.indexOf("?");
  const values = q === -1 ? [] : new URLSearchParams(url.slice(q + 1)).getAll("database");
  if (values.length === 0) {
    throw new RejectionError(400, "failed to deserialize query string: missing field `database`");
  }
  if (values.length > 1) {
    throw new RejectionError(400, "failed to deserialize query string: duplicate field `database`");
  }
  return values[0]!;
}

// The reference's SchemaDumpError texts.
const DUMP_FAILED = "failed to execute pg_dump";
const DUMP_UNEXPECTED = "unexpected I/O error";

/** Host, port and user for pg_dump, read from --connstr as libpq would (host may be a socket dir). */
export function pgDumpTarget(connstr: URL): { host: string; port: string; user: string } {
  const urlHost = decodeURIComponent(connstr.hostname.replace(/^\[(.*)\]$/, "$1"));
  const host = urlHost || connstr.searchParams.get("host") || "";
  const port = connstr.port || connstr.searchParams.get("port") || "5432";
  const user = decodeURIComponent(connstr.username) || connstr.searchParams.get("user") || "";
  if (!host || !user) throw new HttpError(500, DUMP_UNEXPECTED);
  return { host, port, user };
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl = pending.indexOf("\n");
    while (nl !== -1) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      nl = pending.indexOf("\n");
    }
  }
  pending += decoder.decode();
  if (pending !== "") yield pending;
}

async function logRest(stderr: AsyncGenerator<string>): Promise<void> {
  try {
    for await (const line of stderr) log.warn(`pg_dump stderr: ${line}`);
  } catch {
    // pg_dump went away; nothing more to log.
  }
}

/**
 * Runs `pg_dump --schema-only` for `dbname` and answers with its stdout as a stream. The name goes
 * in PGDATABASE, never on the command line, so names with `=` or spaces are not read as a
 * conninfo string. Nothing is sent until pg_dump has written something: a dump that produces no
 * output is a 404 when its first stderr line says the database does not exist, a 500 otherwise.
 */
export async function schemaDumpResponse(
  pgDump: string,
  connstr: URL,
  dbname: string,
): Promise<Response> {
  const { host, port, user } = pgDumpTarget(connstr);
  let proc: ReturnType<typeof spawnDump>;
  try {
    proc = spawnDump(pgDump, host, port, user, dbname);
  } catch (err) {
    log.warn(`cannot run ${pgDump}: ${err instanceof Error ? err.message : String(err)}`);
    throw new HttpError(500, DUMP_FAILED);
  }
  const stderr = lines(proc.stderr);
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
    throw new HttpError(500, DUMP_FAILED);
  }
  if (first === undefined) {
    const line = await stderr.next().catch(() => ({ done: true as const, value: undefined }));
    if (!line.done) {
      if (line.value.includes(`FATAL:  database "${dbname}" does not exist`)) {
        void logRest(stderr);
        throw new HttpError(404, "database does not exist");
      }
      log.warn(`pg_dump stderr: ${line.value}`);
    }
    void logRest(stderr);
    throw new HttpError(500, DUMP_FAILED);
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
  // application/json is the reference's header for this SQL text (a quirk kept for clients).
  return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
}

function spawnDump(pgDump: string, host: string, port: string, user: string, dbname: string) {
  return Bun.spawn([pgDump, "--host", host, "--port", port, "--username", user, "--schema-only"], {
    env: { ...process.env, PGDATABASE: dbname },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
}

export const catalogRoutes = (opts: { connstr: URL; pgDump: string }) =>
  new Elysia({ name: "routes:catalog" })
    .get("/dbs_and_roles", async () => {
      try {
        return jsonResponse(200, await getDbsAndRoles(opts.connstr));
      } catch (err) {
        throw new HttpError(500, postgresErrorText(err));
      }
    })
    .get("/database_schema", ({ request }) =>
      schemaDumpResponse(opts.pgDump, opts.connstr, databaseParam(request.url)),
    );
