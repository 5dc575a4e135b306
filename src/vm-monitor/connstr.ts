// libpq's `keyword=value` connection strings (what --filecache-connstr and --pgconnstr carry),
// turned into postgres.js options. postgres.js takes a URL or an options object, not this form.

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

const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);

/**
 * Splits a keyword/value string by libpq's rules: `key = value` pairs separated by whitespace;
 * a value is either single-quoted (where `\'` and `\\` escape) or runs to the next whitespace
 * (where a backslash escapes the next character).
 */
export function parseKeywordValue(s: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const n = s.length;
  while (i < n) {
    while (isSpace(s[i])) i++;
    if (i >= n) break;
    const keyStart = i;
    while (i < n && s[i] !== "=" && !isSpace(s[i])) i++;
    const key = s.slice(keyStart, i);
    while (isSpace(s[i])) i++;
    if (s[i] !== "=") {
      throw new ConnstrError(`missing "=" after "${key}" in connection info string`);
    }
    i++;
    while (isSpace(s[i])) i++;
    let value = "";
    if (s[i] === "'") {
      i++;
      let closed = false;
      while (i < n) {
        const c = s[i]!;
        if (c === "\\" && i + 1 < n) {
          value += s[i + 1];
          i += 2;
        } else if (c === "'") {
          i++;
          closed = true;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw new ConnstrError("unterminated quoted string in connection info string");
    } else {
      while (i < n && !isSpace(s[i])) {
        if (s[i] === "\\" && i + 1 < n) {
          value += s[i + 1];
          i += 2;
        } else {
          value += s[i];
          i++;
        }
      }
    }
    if (!USED.has(key) && !IGNORED.has(key)) {
      throw new ConnstrError(`invalid connection option "${key}"`);
    }
    out.set(key, value);
  }
  return out;
}

function fromUrl(s: string): Map<string, string> {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new ConnstrError("invalid connection URL");
  }
  const m = new Map<string, string>();
  if (url.hostname) m.set("host", decodeURIComponent(url.hostname.replace(/^\[|\]$/g, "")));
  if (url.port) m.set("port", url.port);
  if (url.username) m.set("user", decodeURIComponent(url.username));
  if (url.password) m.set("password", decodeURIComponent(url.password));
  const db = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (db) m.set("dbname", db);
  for (const [k, v] of url.searchParams) {
    if (!USED.has(k) && !IGNORED.has(k)) throw new ConnstrError(`invalid connection option "${k}"`);
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
  const kv = /^postgres(ql)?:\/\//.test(s) ? fromUrl(s) : parseKeywordValue(s);
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
