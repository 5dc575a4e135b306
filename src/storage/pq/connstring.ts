// Connection strings for the storage client, parsed as tokio-postgres' Config::from_str does: a
// `postgres://`/`postgresql://` URL, else libpq `key=value` pairs.
import { userInfo } from "node:os";
import { environment } from "../../testing-knobs.ts";
import {
  type ConnstringPair,
  ConnstringSyntaxError,
  isConnstringUrl,
  splitConnstringUrl,
  splitKeywordValue,
} from "../../util/connstring.ts";

export interface ConnParams {
  host: string;
  port: number;
  user: string;
  database: string | null;
  password: string | null;
  options: string | null;
  applicationName: string | null;
}

// Keys tokio-postgres knows; any other key is an error there too. Only some matter here.
const KNOWN_KEYS = new Set([
  "user",
  "password",
  "dbname",
  "options",
  "application_name",
  "sslmode",
  "host",
  "hostaddr",
  "port",
  "connect_timeout",
  "tcp_user_timeout",
  "keepalives",
  "keepalives_idle",
  "keepalives_interval",
  "keepalives_retries",
  "target_session_attrs",
  "channel_binding",
  "load_balance_hosts",
  "replication",
]);

function defaultUser(): string {
  // tokio-postgres falls back to the OS user name (whoami) when no user is given.
  try {
    return userInfo().username;
  } catch {
    return environment.user() ?? "postgres";
  }
}

/** tokio-postgres's wording for the keyword/value form's syntax errors. */
function parseKeyValue(s: string): [string, string][] {
  let pairs: ConnstringPair[];
  try {
    pairs = splitKeywordValue(s);
  } catch (err) {
    if (!(err instanceof ConnstringSyntaxError)) throw err;
    const e = err.syntax;
    if (e.kind === "unterminated-quote") {
      throw new Error("unterminated quoted connection parameter value");
    }
    throw new Error(
      e.atEnd
        ? "invalid connection string: unexpected EOF"
        : `invalid connection string: expected '=' at byte ${e.offset}`,
    );
  }
  return pairs.map(({ key, value, quoted }) => {
    if (value === "" && !quoted) throw new Error("invalid connection string: unexpected EOF");
    return [key, value];
  });
}

/**
 * Parses a `postgres://`/`postgresql://` URL or a libpq `key=value` string the way the reference's
 * client (tokio-postgres) does: unknown keys are errors, the user defaults to the OS user, the port
 * to 5432, and no database is sent unless one is given. Only the first host is used.
 */
export function parseConnstring(s: string): ConnParams {
  let pairs: [string, string][];
  if (isConnstringUrl(s)) pairs = splitConnstringUrl(s);
  else pairs = parseKeyValue(s);

  const hosts: string[] = [];
  const ports: number[] = [];
  let hostaddr: string | null = null;
  const r: Omit<ConnParams, "host" | "port" | "user"> & { user: string | null } = {
    user: null,
    database: null,
    password: null,
    options: null,
    applicationName: null,
  };
  for (const [key, value] of pairs) {
    if (!KNOWN_KEYS.has(key)) throw new Error(`unknown option \`${key}\` in connection string`);
    switch (key) {
      case "user":
        r.user = value;
        break;
      case "password":
        r.password = value;
        break;
      case "dbname":
        r.database = value;
        break;
      case "options":
        r.options = value;
        break;
      case "application_name":
        r.applicationName = value;
        break;
      case "host":
        hosts.push(...value.split(","));
        break;
      case "hostaddr":
        hostaddr ??= value.split(",")[0] ?? null;
        break;
      case "port":
        for (const p of value.split(",")) {
          const n = p === "" ? 5432 : Number(p);
          if (!/^\d*$/.test(p) || !Number.isInteger(n) || n < 0 || n > 65535) {
            throw new Error("invalid value for option `port`");
          }
          ports.push(n);
        }
        break;
      case "sslmode":
        // NoTls: "require" cannot be honoured; "disable"/"prefer" mean plain TCP here.
        if (value === "require") throw new Error("sslmode=require is not supported (no TLS)");
        if (value !== "disable" && value !== "prefer") {
          throw new Error("invalid value for option `sslmode`");
        }
        break;
      default:
        break; // accepted and ignored: TCP tuning and session attributes do not apply here
    }
  }
  const host = hostaddr ?? hosts[0];
  if (host === undefined || host === "") throw new Error("connection string has no host");
  if (host.startsWith("/")) throw new Error("unix-domain socket hosts are not supported");
  return {
    host,
    port: ports[0] ?? 5432,
    user: r.user ?? defaultUser(),
    database: r.database,
    password: r.password,
    options: r.options,
    applicationName: r.applicationName,
  };
}
