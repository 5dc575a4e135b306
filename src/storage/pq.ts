// A small PostgreSQL v3 frontend for Neon's storage servers (pageserver, safekeepers), which speak
// only a subset of the protocol (libs/postgres_backend): startup, cleartext password, simple Query,
// and the extended-protocol messages that `copy_out` needs. The messages sent mirror Neon's fork
// of rust-postgres (tokio-postgres), the client the reference uses:
//   startup: client_encoding=UTF8, user, [database], [options], [application_name]; no SSLRequest
//   simpleQuery: Query
//   copyOut: Parse(sN)+Describe(S,sN)+Sync, then Bind(""<-sN, result formats [1])+Execute("",0)+Sync,
//            then (once CopyOutResponse arrived, as the dropped Statement does) Close(S,sN)+Sync.
// Plain TCP only: the reference connects with NoTls.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { userInfo } from "node:os";
import type { Socket } from "bun";
import { log } from "../log.ts";

export interface ConnParams {
  host: string;
  port: number;
  user: string;
  database: string | null;
  password: string | null;
  options: string | null;
  applicationName: string | null;
}

/** An ErrorResponse from the server; `message` is the server's own text. */
export class PqError extends Error {
  override name = "PqError";
  readonly severity: string;
  readonly code: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;
  constructor(fields: Record<string, string>) {
    super(fields.M ?? "unknown server error");
    this.severity = fields.V ?? fields.S ?? "ERROR";
    this.code = fields.C ?? "";
    this.detail = fields.D;
    this.hint = fields.H;
  }
}

// ---------------------------------------------------------------------------------------------
// Connection strings (tokio-postgres Config::from_str: URL first, else key=value)

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
    return process.env.USER ?? "postgres";
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

// ---------------------------------------------------------------------------------------------
// Message encoding

const enc = new TextEncoder();
const dec = new TextDecoder();

class Writer {
  private parts: Uint8Array[] = [];
  private len = 0;
  byte(b: number): this {
    return this.raw(Uint8Array.of(b));
  }
  i16(n: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setInt16(0, n);
    return this.raw(b);
  }
  i32(n: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, n);
    return this.raw(b);
  }
  cstr(s: string): this {
    const b = enc.encode(s);
    if (b.includes(0)) throw new Error("string contains a NUL byte");
    return this.raw(b).byte(0);
  }
  raw(b: Uint8Array): this {
    this.parts.push(b);
    this.len += b.length;
    return this;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.len);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/** A typed frontend message: type byte, int32 length (self included), body. */
function msg(type: string, body: (w: Writer) => void = () => {}): Uint8Array {
  const w = new Writer();
  body(w);
  const b = w.bytes();
  return new Writer()
    .byte(type.charCodeAt(0))
    .i32(b.length + 4)
    .raw(b)
    .bytes();
}

function concat(parts: Uint8Array[]): Uint8Array {
  return parts.reduce((w, p) => w.raw(p), new Writer()).bytes();
}

const PROTOCOL_3_0 = 196608;

function startupMessage(params: [string, string][]): Uint8Array {
  const w = new Writer().i32(PROTOCOL_3_0);
  for (const [k, v] of params) w.cstr(k).cstr(v);
  w.byte(0);
  const b = w.bytes();
  return new Writer()
    .i32(b.length + 4)
    .raw(b)
    .bytes();
}

const passwordMessage = (pw: Uint8Array) => msg("p", (w) => w.raw(pw).byte(0));
const queryMessage = (sql: string) => msg("Q", (w) => w.cstr(sql));
const parseMessage = (name: string, sql: string) => msg("P", (w) => w.cstr(name).cstr(sql).i16(0));
const describeMessage = (kind: "S" | "P", name: string) =>
  msg("D", (w) => w.byte(kind.charCodeAt(0)).cstr(name));
// tokio-postgres binds with no parameters and one result-format code, 1 (binary).
const bindMessage = (portal: string, stmt: string) =>
  msg("B", (w) => w.cstr(portal).cstr(stmt).i16(0).i16(0).i16(1).i16(1));
const executeMessage = (portal: string) => msg("E", (w) => w.cstr(portal).i32(0));
const closeMessage = (kind: "S" | "P", name: string) =>
  msg("C", (w) => w.byte(kind.charCodeAt(0)).cstr(name));
const SYNC = msg("S");
const TERMINATE = msg("X");

// ---------------------------------------------------------------------------------------------
// Message decoding

interface BackendMessage {
  type: string;
  body: Uint8Array;
}

class Reader {
  private o = 0;
  private readonly dv: DataView;
  constructor(private readonly b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  byte(): number {
    if (this.o + 1 > this.b.length) throw new Error("malformed message from server");
    return this.b[this.o++] as number;
  }
  i16(): number {
    if (this.o + 2 > this.b.length) throw new Error("malformed message from server");
    const v = this.dv.getInt16(this.o);
    this.o += 2;
    return v;
  }
  i32(): number {
    if (this.o + 4 > this.b.length) throw new Error("malformed message from server");
    const v = this.dv.getInt32(this.o);
    this.o += 4;
    return v;
  }
  cstr(): string {
    const end = this.b.indexOf(0, this.o);
    if (end === -1) throw new Error("malformed message from server: unterminated string");
    const s = dec.decode(this.b.subarray(this.o, end));
    this.o = end + 1;
    return s;
  }
  take(n: number): Uint8Array {
    if (n < 0 || this.o + n > this.b.length) throw new Error("malformed message from server");
    const v = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return v;
  }
  rest(): Uint8Array {
    return this.take(this.b.length - this.o);
  }
}

function errorFields(body: Uint8Array): Record<string, string> {
  const r = new Reader(body);
  const fields: Record<string, string> = {};
  for (;;) {
    const code = r.byte();
    if (code === 0) break;
    fields[String.fromCharCode(code)] = r.cstr();
  }
  return fields;
}

const MESSAGE_NAMES: Record<string, string> = {
  R: "Authentication",
  K: "BackendKeyData",
  "2": "BindComplete",
  "3": "CloseComplete",
  C: "CommandComplete",
  d: "CopyData",
  c: "CopyDone",
  G: "CopyInResponse",
  H: "CopyOutResponse",
  W: "CopyBothResponse",
  D: "DataRow",
  I: "EmptyQueryResponse",
  E: "ErrorResponse",
  n: "NoData",
  N: "NoticeResponse",
  A: "NotificationResponse",
  t: "ParameterDescription",
  S: "ParameterStatus",
  "1": "ParseComplete",
  s: "PortalSuspended",
  Z: "ReadyForQuery",
  T: "RowDescription",
};

function describe(m: BackendMessage): string {
  return `${MESSAGE_NAMES[m.type] ?? "unknown"} ('${m.type}')`;
}

/** Incoming bytes not yet framed into messages; chunks are kept, not concatenated. */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0; // offset into chunks[0]
  length = 0;

  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  private byteAt(i: number): number {
    let idx = i + this.head;
    for (const c of this.chunks) {
      if (idx < c.length) return c[idx] as number;
      idx -= c.length;
    }
    throw new RangeError("ByteQueue underflow");
  }

  u32At(i: number): number {
    return (
      ((this.byteAt(i) << 24) |
        (this.byteAt(i + 1) << 16) |
        (this.byteAt(i + 2) << 8) |
        this.byteAt(i + 3)) >>>
      0
    );
  }

  peek(): number {
    return this.byteAt(0);
  }

  take(n: number): Uint8Array {
    if (n > this.length) throw new RangeError("ByteQueue underflow");
    this.length -= n;
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      // The common case: the message lies in one chunk, so no copy.
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return out;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0] as Uint8Array;
      const k = Math.min(c.length - this.head, n - o);
      out.set(c.subarray(this.head, this.head + k), o);
      o += k;
      this.head += k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// SCRAM-SHA-256 (RFC 5802/7677), without channel binding: the connection has no TLS.

function scramClient(password: string) {
  const nonce = randomBytes(18).toString("base64");
  const gs2 = "n,,";
  const firstBare = `n=,r=${nonce}`;
  let serverSignature: Buffer | null = null;
  return {
    first: enc.encode(gs2 + firstBare),
    next(serverFirst: string): Uint8Array {
      const attrs = new Map(
        serverFirst.split(",").map((kv) => [kv.slice(0, 1), kv.slice(2)] as [string, string]),
      );
      const r = attrs.get("r");
      const salt = attrs.get("s");
      const iter = Number(attrs.get("i"));
      if (!r?.startsWith(nonce) || !salt || !Number.isInteger(iter) || iter < 1) {
        throw new Error("invalid SCRAM server-first-message");
      }
      const salted = pbkdf2Sync(password, Buffer.from(salt, "base64"), iter, 32, "sha256");
      const clientKey = createHmac("sha256", salted).update("Client Key").digest();
      const storedKey = createHash("sha256").update(clientKey).digest();
      const finalNoProof = `c=${Buffer.from(gs2).toString("base64")},r=${r}`;
      const authMessage = `${firstBare},${serverFirst},${finalNoProof}`;
      const clientSig = createHmac("sha256", storedKey).update(authMessage).digest();
      const proof = Buffer.alloc(clientKey.length);
      for (let i = 0; i < proof.length; i++) {
        proof[i] = (clientKey[i] as number) ^ (clientSig[i] as number);
      }
      const serverKey = createHmac("sha256", salted).update("Server Key").digest();
      serverSignature = createHmac("sha256", serverKey).update(authMessage).digest();
      return enc.encode(`${finalNoProof},p=${proof.toString("base64")}`);
    },
    verify(serverFinal: string): void {
      if (serverFinal.startsWith("e=")) {
        throw new Error(`SCRAM authentication failed: ${serverFinal.slice(2)}`);
      }
      const v = serverFinal.startsWith("v=") ? Buffer.from(serverFinal.slice(2), "base64") : null;
      if (!v || !serverSignature || v.length !== serverSignature.length) {
        throw new Error("invalid SCRAM server-final-message");
      }
      if (!timingSafeEqual(v, serverSignature)) {
        throw new Error("SCRAM server signature mismatch");
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The connection

export interface ConnectOptions {
  host: string;
  port: number;
  user: string;
  database?: string | null;
  password?: string | null;
  options?: string | null;
  applicationName?: string | null;
  /** Covers TCP connect, startup and authentication. */
  timeoutMs?: number;
  /** Aborting closes the connection and fails whatever is in progress, at any time. */
  signal?: AbortSignal;
}

export interface SimpleQueryResult {
  columns: string[];
  rows: (string | null)[][];
  command: string | null;
}

// Read-side backpressure: stop reading the socket while this many parsed bytes wait unconsumed.
const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 << 10;
/** How much CopyData one chunk of copyOut gathers at most. */
const COPY_CHUNK_BYTES = 256 << 10;

let nextStatementId = 0;

export class PqConnection {
  /** Microseconds from the start of connect() to the first ReadyForQuery. */
  connectMicros = 0;
  readonly parameters = new Map<string, string>();
  processId = 0;

  private socket: Socket<undefined> | null = null;
  private readonly inbuf = new ByteQueue();
  private readonly queue: BackendMessage[] = [];
  private queuedBytes = 0;
  private paused = false;
  private failure: Error | null = null;
  private eof = false;
  private waiter: (() => void) | null = null;
  private outPending: Uint8Array[] = [];
  private drainWaiters: (() => void)[] = [];
  private busy = false;
  private closed = false;
  private abortListener: (() => void) | null = null;

  private constructor(
    private readonly label: string,
    private readonly signal: AbortSignal | undefined,
  ) {}

  static async connect(opts: ConnectOptions): Promise<PqConnection> {
    const started = performance.now();
    const label = `${opts.host}:${opts.port}`;
    const conn = new PqConnection(label, opts.signal);
    const timeoutMs = opts.timeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (opts.signal?.aborted) throw conn.abortError(opts.signal.reason);
    if (opts.signal) {
      const sig = opts.signal;
      conn.abortListener = () => conn.fail(conn.abortError(sig.reason));
      sig.addEventListener("abort", conn.abortListener, { once: true });
    }
    try {
      const work = conn.open(opts);
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => conn.fail(new Error(`timed out after ${timeoutMs} ms connecting to ${label}`)),
          timeoutMs,
        );
      }
      await work;
    } catch (err) {
      conn.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    conn.connectMicros = Math.round((performance.now() - started) * 1000);
    return conn;
  }

  private abortError(reason: unknown): Error {
    return new Error(`connection to ${this.label} aborted`, { cause: reason });
  }

  private async open(opts: ConnectOptions): Promise<void> {
    // connect() and a failure raised meanwhile (timeout, abort) race here; a socket that opens
    // after the failure is closed at once.
    const handlers = {
      binaryType: "uint8array" as const,
      data: (_s: Socket<undefined>, data: Uint8Array) => this.onData(data),
      drain: () => this.onDrain(),
      end: () => this.onEnd(),
      close: (_s: Socket<undefined>, err?: Error) => this.onClose(err),
      error: (_s: Socket<undefined>, err: Error) =>
        this.fail(new Error(`I/O error on ${this.label}`, { cause: err })),
      connectError: () => {},
    };
    // A host that is a directory means the Unix socket `<dir>/.s.PGSQL.<port>`, as in libpq.
    const connecting = (
      opts.host.startsWith("/")
        ? Bun.connect({
            unix: `${opts.host.replace(/\/+$/, "")}/.s.PGSQL.${opts.port}`,
            socket: handlers,
          })
        : Bun.connect({ hostname: opts.host, port: opts.port, socket: handlers })
    ).then(
      (s) => {
        if (this.failure) s.terminate();
        else this.socket = s;
        return s;
      },
      (err: unknown) => {
        throw new Error(`could not connect to ${this.label}`, { cause: err });
      },
    );
    await Promise.race([connecting, this.failedPromise()]);
    if (this.failure) throw this.failure;

    const params: [string, string][] = [
      ["client_encoding", "UTF8"],
      ["user", opts.user],
    ];
    if (opts.database != null) params.push(["database", opts.database]);
    if (opts.options != null) params.push(["options", opts.options]);
    if (opts.applicationName != null) params.push(["application_name", opts.applicationName]);
    await this.write(startupMessage(params));
    await this.authenticate(opts.user, opts.password ?? null);

    for (;;) {
      const m = await this.next();
      switch (m.type) {
        case "K": {
          const r = new Reader(m.body);
          this.processId = r.i32();
          break;
        }
        case "Z":
          return;
        case "E":
          throw new PqError(errorFields(m.body));
        default:
          throw this.unexpected(m, "during startup");
      }
    }
  }

  private async authenticate(user: string, password: string | null): Promise<void> {
    const needPassword = (): string => {
      if (password === null) {
        throw new Error(`server ${this.label} requested a password but none was provided`);
      }
      return password;
    };
    const m = await this.next();
    if (m.type === "E") throw new PqError(errorFields(m.body));
    if (m.type !== "R") throw this.unexpected(m, "during authentication");
    const r = new Reader(m.body);
    const kind = r.i32();
    switch (kind) {
      case 0:
        return;
      case 3:
        await this.write(passwordMessage(enc.encode(needPassword())));
        break;
      case 5: {
        const salt = r.take(4);
        const inner = createHash("md5")
          .update(needPassword() + user)
          .digest("hex");
        const outer = createHash("md5").update(inner).update(salt).digest("hex");
        await this.write(passwordMessage(enc.encode(`md5${outer}`)));
        break;
      }
      case 10: {
        const mechanisms: string[] = [];
        for (let s = r.cstr(); s !== ""; s = r.cstr()) mechanisms.push(s);
        if (!mechanisms.includes("SCRAM-SHA-256")) {
          throw new Error(`unsupported SASL mechanisms: ${mechanisms.join(", ")}`);
        }
        const scram = scramClient(needPassword());
        await this.write(
          msg("p", (w) => w.cstr("SCRAM-SHA-256").i32(scram.first.length).raw(scram.first)),
        );
        const cont = await this.authMessage(11);
        await this.write(msg("p", (w) => w.raw(scram.next(dec.decode(cont)))));
        scram.verify(dec.decode(await this.authMessage(12)));
        break;
      }
      default:
        throw new Error(`unsupported authentication method ${kind} requested by ${this.label}`);
    }
    await this.authMessage(0);
  }

  private async authMessage(expected: number): Promise<Uint8Array> {
    const m = await this.next();
    if (m.type === "E") throw new PqError(errorFields(m.body));
    if (m.type !== "R") throw this.unexpected(m, "during authentication");
    const r = new Reader(m.body);
    const kind = r.i32();
    if (kind !== expected) {
      throw new Error(`unexpected authentication message ${kind} (expected ${expected})`);
    }
    return r.rest();
  }

  // --- socket plumbing ---

  private onData(data: Uint8Array): void {
    this.inbuf.push(data);
    try {
      while (this.inbuf.length >= 5) {
        const len = this.inbuf.u32At(1);
        if (len < 4) throw new Error(`invalid message length ${len} from ${this.label}`);
        if (this.inbuf.length < len + 1) break;
        const type = String.fromCharCode(this.inbuf.peek());
        const frame = this.inbuf.take(len + 1);
        this.queue.push({ type, body: frame.subarray(5) });
        this.queuedBytes += frame.length;
      }
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (!this.paused && this.queuedBytes > HIGH_WATER && this.socket) {
      this.paused = true;
      this.socket.pause();
    }
    this.wake();
  }

  private onDrain(): void {
    const sock = this.socket;
    while (sock && this.outPending.length > 0) {
      const b = this.outPending[0] as Uint8Array;
      const n = sock.write(b);
      if (n < 0) return;
      if (n < b.length) {
        this.outPending[0] = b.subarray(n);
        return;
      }
      this.outPending.shift();
    }
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  private onEnd(): void {
    this.eof = true;
    this.wake();
  }

  private onClose(err?: Error): void {
    this.eof = true;
    if (err) this.fail(new Error(`connection to ${this.label} failed`, { cause: err }));
    this.wake();
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private failWaiters: ((e: Error) => void)[] = [];

  private failedPromise(): Promise<never> {
    return new Promise((_, reject) => {
      if (this.failure) reject(this.failure);
      else this.failWaiters.push(reject);
    });
  }

  /** Makes the connection unusable: records the first failure and closes the socket. */
  private fail(err: Error): void {
    if (!this.failure) this.failure = err;
    for (const f of this.failWaiters.splice(0)) f(this.failure);
    this.destroy();
    this.wake();
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  private destroy(): void {
    this.closed = true;
    if (this.abortListener && this.signal) {
      this.signal.removeEventListener("abort", this.abortListener);
      this.abortListener = null;
    }
    const s = this.socket;
    this.socket = null;
    s?.terminate();
  }

  private async write(b: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    const sock = this.socket;
    const gone = () =>
      new Error(`connection to ${this.label} ${this.eof ? "closed by the server" : "is closed"}`);
    if (!sock || this.closed || this.eof) throw gone();
    if (this.outPending.length === 0) {
      const n = sock.write(b);
      if (n < 0) throw gone();
      if (n === b.length) return;
      this.outPending.push(b.subarray(n));
    } else this.outPending.push(b);
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    if (this.failure) throw this.failure;
  }

  /** CopyData bodies already queued, up to about `budget` bytes, taken without waiting. */
  private takeQueuedCopyData(budget: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (budget > 0 && this.queue[0]?.type === "d") {
      const m = this.queue.shift()!;
      this.queuedBytes -= m.body.length + 5;
      budget -= m.body.length;
      out.push(m.body);
    }
    if (this.paused && this.queuedBytes < LOW_WATER && this.socket) {
      this.paused = false;
      this.socket.resume();
    }
    return out;
  }

  /** The next backend message; throws on I/O failure or EOF. Skips asynchronous messages. */
  private async next(): Promise<BackendMessage> {
    for (;;) {
      const m = this.queue.shift();
      if (m) {
        this.queuedBytes -= m.body.length + 5;
        if (this.paused && this.queuedBytes < LOW_WATER && this.socket) {
          this.paused = false;
          this.socket.resume();
        }
        if (m.type === "N") {
          const f = errorFields(m.body);
          log.debug("notice from storage server", { peer: this.label, message: f.M });
          continue;
        }
        if (m.type === "S") {
          const r = new Reader(m.body);
          this.parameters.set(r.cstr(), r.cstr());
          continue;
        }
        if (m.type === "A") continue;
        return m;
      }
      if (this.failure) throw this.failure;
      if (this.eof) {
        const e = new Error(`connection to ${this.label} closed by the server`);
        this.fail(e);
        throw e;
      }
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  private unexpected(m: BackendMessage, where: string): Error {
    const e = new Error(`unexpected message ${describe(m)} from ${this.label} ${where}`);
    this.fail(e);
    return e;
  }

  private enter(): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error(`connection to ${this.label} is closed`);
    if (this.busy) throw new Error("PqConnection: another operation is in progress");
    this.busy = true;
  }

  /**
   * After an ErrorResponse, reads to ReadyForQuery so the connection stays usable, then returns
   * the PqError. A server that closes instead still yields the PqError.
   */
  private async drainAfterError(err: PqError, syncs = 1): Promise<PqError> {
    try {
      let left = syncs;
      while (left > 0) {
        const m = await this.next();
        if (m.type === "Z") left--;
      }
    } catch {
      // the server's error is the one worth reporting
    }
    return err;
  }

  // --- operations ---

  /** Runs `sql` with the simple Query protocol; rows are text. Multi-statement: the last result. */
  async simpleQuery(sql: string): Promise<SimpleQueryResult> {
    this.enter();
    try {
      await this.write(queryMessage(sql));
      let result: SimpleQueryResult = { columns: [], rows: [], command: null };
      let described = false;
      let error: PqError | null = null;
      for (;;) {
        // A server that closes right after its ErrorResponse: that error is the one to report.
        const m = await this.next().catch((ioErr: unknown) => {
          throw error ?? ioErr;
        });
        switch (m.type) {
          case "T": {
            const r = new Reader(m.body);
            const n = r.i16();
            const columns: string[] = [];
            for (let i = 0; i < n; i++) {
              columns.push(r.cstr());
              r.take(18); // table oid, attnum, type oid, typlen, typmod, format
            }
            result = { columns, rows: [], command: null };
            described = true;
            break;
          }
          case "D": {
            if (!described) throw this.unexpected(m, "before RowDescription");
            const r = new Reader(m.body);
            const n = r.i16();
            const row: (string | null)[] = [];
            for (let i = 0; i < n; i++) {
              const len = r.i32();
              row.push(len < 0 ? null : dec.decode(r.take(len)));
            }
            result.rows.push(row);
            break;
          }
          case "C":
            // A statement without rows that follows another: its result replaces the earlier.
            if (!described) result = { columns: [], rows: [], command: null };
            result.command = new Reader(m.body).cstr();
            described = false;
            break;
          case "I":
            result = { columns: [], rows: [], command: null };
            described = false;
            break;
          case "E":
            error ??= new PqError(errorFields(m.body));
            break;
          case "Z":
            if (error) throw error;
            return result;
          default:
            throw this.unexpected(m, "in a simple query");
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /**
   * Runs a COPY ... TO STDOUT (or a storage-server command answering with CopyOut) the way
   * tokio-postgres copy_out does, yielding CopyData payloads as they arrive. Reading the socket
   * pauses while the consumer is slow. The iteration completes only after CopyDone,
   * CommandComplete and ReadyForQuery; an ErrorResponse at any point makes it throw PqError.
   * Leaving the loop early closes the connection.
   */
  copyOut(sql: string): AsyncIterable<Uint8Array> {
    return { [Symbol.asyncIterator]: () => this.copyOutGen(sql) };
  }

  private async *copyOutGen(sql: string): AsyncGenerator<Uint8Array> {
    this.enter();
    let finished = false;
    try {
      const stmt = `s${nextStatementId++}`;
      // Prepare: Parse + Describe(statement) + Sync; a round trip of its own, as in tokio-postgres.
      await this.write(concat([parseMessage(stmt, sql), describeMessage("S", stmt), SYNC]));
      await this.expect("1", "ParseComplete");
      const pd = await this.expect("t", "ParameterDescription");
      const nparams = new Reader(pd.body).i16();
      const rd = await this.next();
      if (rd.type === "E") throw await this.drainAfterError(new PqError(errorFields(rd.body)));
      if (rd.type !== "n" && rd.type !== "T") throw this.unexpected(rd, "after Describe");
      await this.expect("Z", "ReadyForQuery");
      if (nparams !== 0) {
        throw new Error(`statement expects ${nparams} parameters; COPY takes none`);
      }

      await this.write(concat([bindMessage("", stmt), executeMessage(""), SYNC]));
      await this.expect("2", "BindComplete");
      await this.expect("H", "CopyOutResponse");
      // tokio-postgres drops the Statement here, which sends Close(S) + Sync; the answers
      // (CloseComplete, ReadyForQuery) follow the copy's own ReadyForQuery.
      await this.write(concat([closeMessage("S", stmt), SYNC]));

      for (;;) {
        const m = await this.next();
        if (m.type === "d") {
          // The pageserver sends 8 KiB messages; hand over everything already received as one
          // chunk (never waiting for more), since each chunk has a fixed cost downstream.
          const more = this.takeQueuedCopyData(COPY_CHUNK_BYTES - m.body.length);
          yield more.length === 0 ? m.body : Buffer.concat([m.body, ...more]);
          continue;
        }
        if (m.type === "c") break;
        if (m.type === "E") throw await this.drainAfterError(new PqError(errorFields(m.body)), 2);
        throw this.unexpected(m, "in a COPY OUT stream");
      }
      await this.expect("C", "CommandComplete", 2);
      await this.expect("Z", "ReadyForQuery", 1);
      await this.expect("3", "CloseComplete", 1);
      await this.expect("Z", "ReadyForQuery", 0);
      finished = true;
    } finally {
      this.busy = false;
      // An early exit (consumer break or error mid-protocol) leaves unread input behind.
      if (!finished && !this.failure) this.fail(new Error("COPY OUT was not read to its end"));
    }
  }

  /** Reads one message of `type`; an ErrorResponse is drained (`syncs` ReadyForQuery) and thrown. */
  private async expect(type: string, name: string, syncs = 1): Promise<BackendMessage> {
    const m = await this.next();
    if (m.type === type) return m;
    if (m.type === "E") throw await this.drainAfterError(new PqError(errorFields(m.body)), syncs);
    throw this.unexpected(m, `(expected ${name})`);
  }

  /** Sends Terminate and closes the socket. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    const sock = this.socket;
    if (sock && !this.failure) {
      try {
        sock.write(TERMINATE);
        sock.end();
      } catch {
        // closing anyway
      }
      this.socket = null;
    }
    this.destroy();
  }
}
