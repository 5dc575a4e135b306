// Connection strings for the storage client, parsed as tokio-postgres' Config::from_str does: a
// `postgres://`/`postgresql://` URL, else libpq `key=value` pairs.
import { userInfo } from "node:os";
import { environment } from "../../testing-knobs.ts";

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

function pctDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch (err) {
    throw new Error(`invalid percent-encoding in connection string: ${s}`, { cause: err });
  }
}

function parseKeyValue(s: string): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  const ws = (c: string | undefined) => c !== undefined && /\s/.test(c);
  while (i < s.length) {
    while (ws(s[i])) i++;
    if (i >= s.length) break;
    const ks = i;
    while (i < s.length && !ws(s[i]) && s[i] !== "=") i++;
    const key = s.slice(ks, i);
    while (ws(s[i])) i++;
    if (s[i] !== "=") {
      throw new Error(
        s[i] === undefined
          ? "invalid connection string: unexpected EOF"
          : `invalid connection string: expected '=' at byte ${i}`,
      );
    }
    i++;
    while (ws(s[i])) i++;
    let value = "";
    if (s[i] === "'") {
      i++;
      let closed = false;
      while (i < s.length) {
        const c = s[i++] as string;
        if (c === "'") {
          closed = true;
          break;
        }
        if (c === "\\") {
          if (i < s.length) value += s[i++];
        } else value += c;
      }
      if (!closed) throw new Error("unterminated quoted connection parameter value");
    } else {
      while (i < s.length && !ws(s[i])) {
        const c = s[i++] as string;
        if (c === "\\") {
          if (i < s.length) value += s[i++];
        } else value += c;
      }
      if (value === "") throw new Error("invalid connection string: unexpected EOF");
    }
    out.push([key, value]);
  }
  return out;
}

function parseUrl(rest: string): [string, string][] {
  const out: [string, string][] = [];
  let s = rest;
  const at = s.indexOf("@");
  // Like tokio-postgres, everything up to the first '@' is credentials.
  if (at !== -1) {
    const creds = s.slice(0, at);
    s = s.slice(at + 1);
    const colon = creds.indexOf(":");
    if (colon === -1) out.push(["user", pctDecode(creds)]);
    else {
      out.push(["user", pctDecode(creds.slice(0, colon))]);
      out.push(["password", pctDecode(creds.slice(colon + 1))]);
    }
  }
  const hostEnd = s.search(/[/?]/);
  const hostPart = hostEnd === -1 ? s : s.slice(0, hostEnd);
  s = hostEnd === -1 ? "" : s.slice(hostEnd);
  if (hostPart !== "") {
    for (const chunk of hostPart.split(",")) {
      let host: string;
      let port: string | undefined;
      if (chunk.startsWith("[")) {
        const close = chunk.indexOf("]");
        if (close === -1) throw new Error("invalid value for option `host`");
        host = chunk.slice(1, close);
        const remaining = chunk.slice(close + 1);
        if (remaining.startsWith(":")) port = remaining.slice(1);
        else if (remaining !== "") throw new Error("invalid value for option `host`");
      } else {
        const colon = chunk.indexOf(":");
        host = colon === -1 ? chunk : chunk.slice(0, colon);
        port = colon === -1 ? undefined : chunk.slice(colon + 1);
      }
      out.push(["host", pctDecode(host)]);
      out.push(["port", pctDecode(port ?? "5432")]);
    }
  }
  if (s.startsWith("/")) {
    s = s.slice(1);
    const q = s.indexOf("?");
    const db = q === -1 ? s : s.slice(0, q);
    s = q === -1 ? "" : s.slice(q);
    if (db !== "") out.push(["dbname", pctDecode(db)]);
  }
  if (s.startsWith("?")) {
    s = s.slice(1);
    while (s !== "") {
      const eq = s.indexOf("=");
      if (eq === -1) throw new Error("invalid connection string: unterminated parameter");
      const key = pctDecode(s.slice(0, eq));
      s = s.slice(eq + 1);
      const amp = s.indexOf("&");
      const value = amp === -1 ? s : s.slice(0, amp);
      s = amp === -1 ? "" : s.slice(amp + 1);
      out.push([key, pctDecode(value)]);
    }
  }
  return out;
}

/**
 * Parses a `postgres://`/`postgresql://` URL or a libpq `key=value` string the way the reference's
 * client (tokio-postgres) does: unknown keys are errors, the user defaults to the OS user, the port
 * to 5432, and no database is sent unless one is given. Only the first host is used.
 */
export function parseConnstring(s: string): ConnParams {
  let pairs: [string, string][];
  if (s.startsWith("postgresql://")) pairs = parseUrl(s.slice("postgresql://".length));
  else if (s.startsWith("postgres://")) pairs = parseUrl(s.slice("postgres://".length));
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
