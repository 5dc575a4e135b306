// The one reader of Postgres connection strings: libpq's `keyword = value` form and the
// `postgres://`/`postgresql://` URL form, split into (key, value) pairs in order. What the keys
// mean, which are allowed and how errors are worded is each caller's business (the storage
// client follows tokio-postgres, the vm-monitor's file-cache connection follows libpq).

export type ConnstringSyntax =
  /** A key not followed by '='; `atEnd` when the string ended first. */
  | { kind: "missing-equals"; key: string; offset: number; atEnd: boolean }
  | { kind: "unterminated-quote"; key: string };

export class ConnstringSyntaxError extends Error {
  override name = "ConnstringSyntaxError";
  constructor(readonly syntax: ConnstringSyntax) {
    super(
      syntax.kind === "missing-equals"
        ? `missing "=" after "${syntax.key}" in connection string`
        : `unterminated quoted value of "${syntax.key}" in connection string`,
    );
  }
}

export interface ConnstringPair {
  key: string;
  value: string;
  /** The value was single-quoted (so an empty value was written as ''). */
  quoted: boolean;
}

const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);

/** True for the URL form, which libpq and tokio-postgres recognise by its scheme. */
export function isConnstringUrl(s: string): boolean {
  return s.startsWith("postgresql://") || s.startsWith("postgres://");
}

/**
 * Splits a keyword/value string by libpq's rules: `key = value` pairs separated by whitespace; a
 * value is single-quoted (where a backslash escapes the next character, so `\'` and `\\`) or runs
 * to the next whitespace (where a backslash also escapes). A trailing lone backslash is dropped.
 */
export function splitKeywordValue(s: string): ConnstringPair[] {
  const out: ConnstringPair[] = [];
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
      throw new ConnstringSyntaxError({ kind: "missing-equals", key, offset: i, atEnd: i >= n });
    }
    i++;
    while (isSpace(s[i])) i++;
    let value = "";
    const quoted = s[i] === "'";
    if (quoted) {
      i++;
      let closed = false;
      while (i < n) {
        const c = s[i++]!;
        if (c === "'") {
          closed = true;
          break;
        }
        if (c === "\\") {
          if (i < n) value += s[i++];
        } else value += c;
      }
      if (!closed) throw new ConnstringSyntaxError({ kind: "unterminated-quote", key });
    } else {
      while (i < n && !isSpace(s[i])) {
        const c = s[i++]!;
        if (c === "\\") {
          if (i < n) value += s[i++];
        } else value += c;
      }
    }
    out.push({ key, value, quoted });
  }
  return out;
}

function pctDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch (err) {
    throw new Error(`invalid percent-encoding in connection string: ${s}`, { cause: err });
  }
}

/**
 * Splits a `postgres://` or `postgresql://` URL as tokio-postgres does: everything up to the first
 * '@' is credentials (user[:password]); then comma-separated hosts, each `host[:port]` or
 * `[v6]:port` (a host without a port gets port 5432); then `/dbname`; then `?key=value&…`. Every
 * part is percent-decoded. Throws an Error naming what is wrong.
 */
export function splitConnstringUrl(s: string): [string, string][] {
  const scheme = s.startsWith("postgresql://") ? "postgresql://" : "postgres://";
  if (!s.startsWith(scheme)) throw new Error("not a postgres:// or postgresql:// URL");
  let rest = s.slice(scheme.length);
  const out: [string, string][] = [];
  const at = rest.indexOf("@");
  if (at !== -1) {
    const creds = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = creds.indexOf(":");
    if (colon === -1) out.push(["user", pctDecode(creds)]);
    else {
      out.push(["user", pctDecode(creds.slice(0, colon))]);
      out.push(["password", pctDecode(creds.slice(colon + 1))]);
    }
  }
  const hostEnd = rest.search(/[/?]/);
  const hostPart = hostEnd === -1 ? rest : rest.slice(0, hostEnd);
  rest = hostEnd === -1 ? "" : rest.slice(hostEnd);
  if (hostPart !== "") {
    for (const chunk of hostPart.split(",")) {
      let host: string;
      let port: string | undefined;
      if (chunk.startsWith("[")) {
        const close = chunk.indexOf("]");
        if (close === -1) throw new Error("invalid value for option `host`");
        host = chunk.slice(1, close);
        const after = chunk.slice(close + 1);
        if (after.startsWith(":")) port = after.slice(1);
        else if (after !== "") throw new Error("invalid value for option `host`");
      } else {
        const colon = chunk.indexOf(":");
        host = colon === -1 ? chunk : chunk.slice(0, colon);
        port = colon === -1 ? undefined : chunk.slice(colon + 1);
      }
      out.push(["host", pctDecode(host)]);
      out.push(["port", pctDecode(port ?? "5432")]);
    }
  }
  if (rest.startsWith("/")) {
    rest = rest.slice(1);
    const q = rest.indexOf("?");
    const db = q === -1 ? rest : rest.slice(0, q);
    rest = q === -1 ? "" : rest.slice(q);
    if (db !== "") out.push(["dbname", pctDecode(db)]);
  }
  if (rest.startsWith("?")) {
    rest = rest.slice(1);
    while (rest !== "") {
      const eq = rest.indexOf("=");
      if (eq === -1) throw new Error("invalid connection string: unterminated parameter");
      const key = pctDecode(rest.slice(0, eq));
      rest = rest.slice(eq + 1);
      const amp = rest.indexOf("&");
      const value = amp === -1 ? rest : rest.slice(0, amp);
      rest = amp === -1 ? "" : rest.slice(amp + 1);
      out.push([key, pctDecode(value)]);
    }
  }
  return out;
}
