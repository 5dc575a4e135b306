// Postgres client errors rendered in the reference's wording (tokio-postgres's Display, and Rust's
// io::Error Display for a failed connect), so the 500 texts of the HTTP API read like the
// reference's. The one place these renderings live.
import { osErrorText } from "../errors.ts";
import { isPostgresError, type PostgresError } from "./driver.ts";

/** The first line of tokio-postgres's Display of a server error: `db error: ERROR: message`. */
export function dbErrorLine(err: PostgresError): string {
  return `db error: ${err.severity}: ${err.message}`;
}

/**
 * A Postgres client error as tokio-postgres displays it: `db error: ERROR: <message>` (with
 * DETAIL/HINT lines) for a server error, `error connecting to server: <io error>` for a failed
 * connect, the plain message otherwise.
 */
export function postgresErrorText(err: unknown): string {
  if (isPostgresError(err)) {
    let text = dbErrorLine(err);
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
 * A `.catch` handler for a statement of a route: `<what failed>: <Postgres error>`, or "Failed
 * to connect to the database" when the statement's implicit connect is what failed.
 */
export function stepFailed(what: string): (err: unknown) => never {
  return (err) => {
    const step = isConnectError(err) ? "Failed to connect to the database" : what;
    throw new Error(`${step}: ${postgresErrorText(err)}`, { cause: err });
  };
}

/**
 * Whether a postgres.js error means the connection could not be made, rather than a statement
 * failed. (postgres.js connects lazily on the first statement, and its reserve() hangs without
 * type fetching, so connect failures are told apart by what they are.)
 */
export function isConnectError(err: unknown): boolean {
  if (isPostgresError(err)) return CONNECT_SQLSTATES.test(err.code);
  const code = (err as { code?: unknown } | null)?.code;
  return osErrorText(err) !== null || code === "CONNECT_TIMEOUT" || code === "ENOTFOUND";
}
