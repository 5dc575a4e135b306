// libpq's `keyword=value` connection strings (what --filecache-connstr and --pgconnstr carry),
// turned into postgres.js options. postgres.js takes a URL or an options object, not this form.
// The splitting is util/connstring.ts's; the keys allowed and the error wording are libpq's.
import {
  type ConnstringPair,
  ConnstringSyntaxError,
  isConnstringUrl,
  splitConnstringUrl,
  splitKeywordValue,
} from "../util/connstring.ts";

export interface FileCacheConnOptions {
  host: string;
  port: number;
  /** A Unix socket path (`<dir>/.s.PGSQL.<port>`) when host is a directory. */
  path: string | undefined;
  database: string;
  username: string;
  password: string | undefined;
  applicationName: string;
  /** Seconds; undefined means postgres.js's default. */
  connectTimeout: number | undefined;
  /** The startup `options` parameter, if given. */
  options: string | undefined;
}

export class ConnstrError extends Error {
  override name = "ConnstrError";
}

/** Keywords understood here; the rest of what a libpq-style client accepts is listed as ignored. */
const USED = new Set([
  "host",
  "hostaddr",
  "port",
  "dbname",
  "user",
  "password",
  "application_name",
  "sslmode",
  "connect_timeout",
  "options",
]);
const IGNORED = new Set([
  "tcp_user_timeout",
  "keepalives",
  "keepalives_idle",
  "keepalives_interval",
  "keepalives_retries",
  "target_session_attrs",
  "channel_binding",
  "load_balance_hosts",
  "sslcert",
  "sslkey",
  "sslrootcert",
  "sslnegotiation",
  "gssencmode",
  "client_encoding",
  "fallback_application_name",
]);

function checkKey(key: string): void {
  if (!USED.has(key) && !IGNORED.has(key)) {
    throw new ConnstrError(`invalid connection option "${key}"`);
  }
}

/** A keyword/value string as a map (a later key wins), with libpq's error wording. */
export function parseKeywordValue(s: string): Map<string, string> {
  let pairs: ConnstringPair[];
  try {
    pairs = splitKeywordValue(s);
  } catch (err) {
    if (!(err instanceof ConnstringSyntaxError)) throw err;
    const e = err.syntax;
    throw new ConnstrError(
      e.kind === "missing-equals"
        ? `missing "=" after "${e.key}" in connection info string`
        : "unterminated quoted string in connection info string",
    );
  }
  const out = new Map<string, string>();
  for (const { key, value } of pairs) {
    checkKey(key);
    out.set(key, value);
  }
  return out;
}

/** A postgres:// URL as a map; only the first host and its port are kept. */
function fromUrl(s: string): Map<string, string> {
  let pairs: [string, string][];
  try {
    pairs = splitConnstringUrl(s);
  } catch (err) {
    throw new ConnstrError(`invalid connection URL: ${(err as Error).message}`);
  }
  const m = new Map<string, string>();
  for (const [k, v] of pairs) {
    checkKey(k);
    if ((k === "host" || k === "port") && m.has(k)) continue;
    m.set(k, v);
  }
  return m;
}

/**
 * A connection string (keyword/value, or a postgres:// URL as libpq also takes) as options for
 * the file-cache connection. TLS is never used, so an sslmode that demands it is refused here
 * rather than on every agent connection.
 */
export function parseConnstr(s: string): FileCacheConnOptions {
  const kv = isConnstringUrl(s) ? fromUrl(s) : parseKeywordValue(s);
  const sslmode = kv.get("sslmode");
  if (sslmode !== undefined && !["disable", "allow", "prefer"].includes(sslmode)) {
    throw new ConnstrError(
      `sslmode=${sslmode} needs TLS, which the file-cache connection does not use (use disable or prefer)`,
    );
  }
  const portText = kv.get("port") ?? "5432";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new ConnstrError(`invalid port "${portText}" in connection info string`);
  }
  const user = kv.get("user");
  if (!user) throw new ConnstrError("the connection string names no user");
  const timeoutText = kv.get("connect_timeout");
  let connectTimeout: number | undefined;
  if (timeoutText !== undefined && timeoutText !== "" && timeoutText !== "0") {
    if (!/^\d+$/.test(timeoutText)) {
      throw new ConnstrError(`invalid connect_timeout "${timeoutText}" in connection info string`);
    }
    connectTimeout = Number(timeoutText);
  }
  // hostaddr wins over host for where to connect, as in libpq. Only the first of a list is used.
  const host = (kv.get("hostaddr") || kv.get("host") || "localhost").split(",")[0]!;
  return {
    host,
    port,
    path: host.startsWith("/") ? `${host}/.s.PGSQL.${port}` : undefined,
    database: kv.get("dbname") || user,
    username: user,
    password: kv.get("password"),
    applicationName: kv.get("application_name") ?? "vm-monitor",
    connectTimeout,
    options: kv.get("options"),
  };
}
