// A Postgres CancelRequest for one running postgres.js query. postgres.js's own `query.cancel()`
// drops the promise of its cancel connection, so a failure there (Postgres gone) becomes an
// unhandled rejection that would kill compute_ctl; this sends the same 16 bytes with errors
// reported to the caller.
import { connect } from "node:net";
import type { PendingQuery, Sql } from "postgres";

const CANCEL_REQUEST_CODE = 80877102;

interface BackendKey {
  pid: number;
  secret: number;
}

/** Where the Sql client connects (postgres.js keeps the parsed options on the instance). */
function target(sql: Sql): { path: string } | { host: string; port: number } {
  const o = sql.options as unknown as { path?: string | false; host?: string[]; port?: number[] };
  if (o.path) return { path: o.path };
  return { host: o.host?.[0] ?? "localhost", port: o.port?.[0] ?? 5432 };
}

/**
 * Cancels `query` on the server. Before the query has reached its connection there is no backend
 * key, and postgres.js's local cancel (which just rejects the queued query) is used instead.
 */
export async function cancelQuery(
  sql: Sql,
  // biome-ignore lint/suspicious/noExplicitAny: any row shape
  query: PendingQuery<any>,
  timeoutMs = 5_000,
): Promise<void> {
  const key = (query as unknown as { state?: BackendKey }).state;
  if (!key || typeof key.pid !== "number") {
    query.cancel();
    return;
  }
  const msg = Buffer.alloc(16);
  msg.writeInt32BE(16, 0);
  msg.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  msg.writeUInt32BE(key.pid >>> 0, 8);
  msg.writeUInt32BE(key.secret >>> 0, 12);
  await new Promise<void>((resolve, reject) => {
    const socket = connect(target(sql));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`cancel request timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => socket.end(msg));
    socket.once("error", (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
    // The server closes the connection once it has read the request.
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
