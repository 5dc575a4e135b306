// A toolkit for STRICT fake PostgreSQL v3 servers (the backend side of the protocol), written
// independently of src/storage/pq.ts so that a client bug cannot hide behind shared code.
// The handshake mirrors Neon's postgres_backend: SSLRequest and GSSENCRequest answered 'N'; with a
// password configured AuthenticationCleartextPassword, then AuthenticationOk, client_encoding and
// ReadyForQuery; without one AuthenticationOk, client_encoding, integer_datetimes, server_version
// 14.1 and ReadyForQuery. Anything a session does not expect goes through `reject`: an
// ErrorResponse, the connection closed, and the reason recorded in `rejections`.
import type { Socket, TCPSocketListener } from "bun";

const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Backend message encoding

class Buf {
  private parts: Uint8Array[] = [];
  private n = 0;
  u8(v: number): this {
    return this.bytes(Uint8Array.of(v));
  }
  i16(v: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setInt16(0, v);
    return this.bytes(b);
  }
  i32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v);
    return this.bytes(b);
  }
  cstr(s: string): this {
    return this.bytes(enc.encode(s)).u8(0);
  }
  bytes(b: Uint8Array): this {
    this.parts.push(b);
    this.n += b.length;
    return this;
  }
  done(): Uint8Array {
    const out = new Uint8Array(this.n);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

function message(type: string, fill: (b: Buf) => void = () => {}): Uint8Array {
  const body = new Buf();
  fill(body);
  const b = body.done();
  return new Buf()
    .u8(type.charCodeAt(0))
    .i32(b.length + 4)
    .bytes(b)
    .done();
}

const TEXT_OID = 25;

/** Backend messages, encoded. */
export const be = {
  authOk: () => message("R", (b) => b.i32(0)),
  authCleartextPassword: () => message("R", (b) => b.i32(3)),
  parameterStatus: (name: string, value: string) => message("S", (b) => b.cstr(name).cstr(value)),
  backendKeyData: (pid: number, key: number) => message("K", (b) => b.i32(pid).i32(key)),
  readyForQuery: (status = "I") => message("Z", (b) => b.u8(status.charCodeAt(0))),
  /** Text columns, as Neon's RowDescriptor::text_col. */
  rowDescription: (names: string[]) =>
    message("T", (b) => {
      b.i16(names.length);
      for (const n of names) b.cstr(n).i32(0).i16(0).i32(TEXT_OID).i16(-1).i32(0).i16(0);
    }),
  dataRow: (values: (string | null)[]) =>
    message("D", (b) => {
      b.i16(values.length);
      for (const v of values) {
        if (v === null) b.i32(-1);
        else {
          const e = enc.encode(v);
          b.i32(e.length).bytes(e);
        }
      }
    }),
  commandComplete: (tag: string) => message("C", (b) => b.cstr(tag)),
  emptyQueryResponse: () => message("I"),
  /** As pq_proto writes it: S, C, M. */
  errorResponse: (msg: string, code = "XX000") =>
    message("E", (b) => b.u8(0x53).cstr("ERROR").u8(0x43).cstr(code).u8(0x4d).cstr(msg).u8(0)),
  noticeResponse: (msg: string) =>
    message("N", (b) => b.u8(0x53).cstr("NOTICE").u8(0x4d).cstr(msg).u8(0)),
  parseComplete: () => message("1"),
  bindComplete: () => message("2"),
  closeComplete: () => message("3"),
  noData: () => message("n"),
  parameterDescription: (oids: number[] = []) =>
    message("t", (b) => {
      b.i16(oids.length);
      for (const o of oids) b.i32(o);
    }),
  /** As pq_proto: overall format 0 (text), 0 columns. */
  copyOutResponse: () => message("H", (b) => b.u8(0).i16(0)),
  copyInResponse: () => message("G", (b) => b.u8(0).i16(0)),
  copyData: (data: Uint8Array) => message("d", (b) => b.bytes(data)),
  copyDone: () => message("c"),
};

// ---------------------------------------------------------------------------------------------
// Frontend message decoding

export type Frontend =
  | { type: "Query"; sql: string }
  | { type: "Parse"; name: string; query: string; paramTypes: number[] }
  | {
      type: "Bind";
      portal: string;
      statement: string;
      paramFormats: number[];
      params: (Uint8Array | null)[];
      resultFormats: number[];
    }
  | { type: "Describe"; kind: string; name: string }
  | { type: "Execute"; portal: string; maxRows: number }
  | { type: "Close"; kind: string; name: string }
  | { type: "Sync" }
  | { type: "Flush" }
  | { type: "Terminate" }
  | { type: "Password"; data: Uint8Array }
  | { type: "Other"; code: string; body: Uint8Array };

class In {
  private o = 0;
  private dv: DataView;
  constructor(private b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  private need(n: number): void {
    if (this.o + n > this.b.length) throw new Error("message too short");
  }
  u8(): number {
    this.need(1);
    return this.b[this.o++] as number;
  }
  i16(): number {
    this.need(2);
    const v = this.dv.getInt16(this.o);
    this.o += 2;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.dv.getInt32(this.o);
    this.o += 4;
    return v;
  }
  cstr(): string {
    const end = this.b.indexOf(0, this.o);
    if (end === -1) throw new Error("unterminated string");
    const s = dec.decode(this.b.subarray(this.o, end));
    this.o = end + 1;
    return s;
  }
  take(n: number): Uint8Array {
    this.need(n);
    const v = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return v;
  }
  end(): void {
    if (this.o !== this.b.length) throw new Error("trailing bytes in message");
  }
}

/** Decodes a typed frontend message; throws on a malformed body. */
export function decodeFrontend(code: string, body: Uint8Array): Frontend {
  const r = new In(body);
  let m: Frontend;
  switch (code) {
    case "Q":
      m = { type: "Query", sql: r.cstr() };
      break;
    case "P": {
      const name = r.cstr();
      const query = r.cstr();
      const n = r.i16();
      const paramTypes: number[] = [];
      for (let i = 0; i < n; i++) paramTypes.push(r.i32());
      m = { type: "Parse", name, query, paramTypes };
      break;
    }
    case "B": {
      const portal = r.cstr();
      const statement = r.cstr();
      const paramFormats: number[] = [];
      for (let i = 0, n = r.i16(); i < n; i++) paramFormats.push(r.i16());
      const params: (Uint8Array | null)[] = [];
      for (let i = 0, n = r.i16(); i < n; i++) {
        const len = r.i32();
        params.push(len < 0 ? null : r.take(len));
      }
      const resultFormats: number[] = [];
      for (let i = 0, n = r.i16(); i < n; i++) resultFormats.push(r.i16());
      m = { type: "Bind", portal, statement, paramFormats, params, resultFormats };
      break;
    }
    case "D":
      m = { type: "Describe", kind: String.fromCharCode(r.u8()), name: r.cstr() };
      break;
    case "E":
      m = { type: "Execute", portal: r.cstr(), maxRows: r.i32() };
      break;
    case "C":
      m = { type: "Close", kind: String.fromCharCode(r.u8()), name: r.cstr() };
      break;
    case "S":
      m = { type: "Sync" };
      break;
    case "H":
      m = { type: "Flush" };
      break;
    case "X":
      m = { type: "Terminate" };
      break;
    case "p":
      return { type: "Password", data: body };
    default:
      return { type: "Other", code, body };
  }
  r.end();
  return m;
}

/** A short description for rejection messages. */
export function showFrontend(m: Frontend): string {
  switch (m.type) {
    case "Query":
      return `Query ${JSON.stringify(m.sql)}`;
    case "Parse":
      return `Parse ${JSON.stringify(m.name)} ${JSON.stringify(m.query)} types=[${m.paramTypes}]`;
    case "Bind":
      return `Bind portal=${JSON.stringify(m.portal)} stmt=${JSON.stringify(m.statement)} paramFormats=[${m.paramFormats}] params=${m.params.length} resultFormats=[${m.resultFormats}]`;
    case "Describe":
    case "Close":
      return `${m.type} ${m.kind} ${JSON.stringify(m.name)}`;
    case "Execute":
      return `Execute ${JSON.stringify(m.portal)} ${m.maxRows}`;
    case "Other":
      return `message '${m.code}'`;
    default:
      return m.type;
  }
}

// ---------------------------------------------------------------------------------------------
// Connections

/** Thrown by reject() to unwind a session; the server swallows it. */
class Rejected extends Error {}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3_0 = 196608;

export class FakeConn {
  readonly id: number;
  /** The StartupMessage parameters, in order. */
  startup: Record<string, string> = {};
  startupKeys: string[] = [];
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private waiter: (() => void) | null = null;
  private eof = false;
  private outPending: Uint8Array[] = [];
  private drainWaiters: (() => void)[] = [];
  private ended = false;

  constructor(
    readonly server: PgServer,
    private socket: Socket<ConnData>,
    id: number,
  ) {
    this.id = id;
  }

  get closed(): boolean {
    return this.ended;
  }

  /** @internal */
  pushData(d: Uint8Array): void {
    // Copy: the toolkit must not depend on the runtime not reusing its read buffer.
    this.chunks.push(new Uint8Array(d));
    this.buffered += d.length;
    this.wake();
  }

  /** @internal */
  onEof(): void {
    this.eof = true;
    this.ended = true;
    this.wake();
    for (const w of this.drainWaiters.splice(0)) w();
  }

  /** @internal */
  onDrain(): void {
    while (this.outPending.length > 0 && !this.ended) {
      const b = this.outPending[0] as Uint8Array;
      const n = this.socket.write(b);
      if (n < 0) break;
      if (n < b.length) {
        this.outPending[0] = b.subarray(n);
        return;
      }
      this.outPending.shift();
    }
    for (const w of this.drainWaiters.splice(0)) w();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private async readExact(n: number): Promise<Uint8Array | null> {
    while (this.buffered < n) {
      if (this.eof) return null;
      await new Promise<void>((r) => {
        this.waiter = r;
      });
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0] as Uint8Array;
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  /** @internal Reads one untyped startup-phase packet: [code, body]. */
  async readStartupPacket(): Promise<[number, Uint8Array] | null> {
    const head = await this.readExact(4);
    if (!head) return null;
    const len = new DataView(head.buffer).getInt32(0);
    if (len < 8 || len > 10000) await this.reject(`invalid startup packet length ${len}`);
    const rest = await this.readExact(len - 4);
    if (!rest) return null;
    return [new DataView(rest.buffer).getInt32(0), rest.subarray(4)];
  }

  /** The next frontend message, or null when the client has hung up. Malformed: rejected. */
  async next(): Promise<Frontend | null> {
    const head = await this.readExact(5);
    if (!head) return null;
    const code = String.fromCharCode(head[0] as number);
    const len = new DataView(head.buffer).getInt32(1);
    if (len < 4 || len > 1 << 24) await this.reject(`invalid length ${len} for message '${code}'`);
    const body = await this.readExact(len - 4);
    if (!body) return null;
    try {
      return decodeFrontend(code, body);
    } catch (err) {
      return this.reject(`malformed message '${code}': ${(err as Error).message}`);
    }
  }

  /**
   * The next message, which must be of `type` (and pass `check`, which returns a complaint or
   * null). Anything else is rejected; EOF gives null.
   */
  async expect<T extends Frontend["type"]>(
    type: T,
    check?: (m: Extract<Frontend, { type: T }>) => string | null,
  ): Promise<Extract<Frontend, { type: T }> | null> {
    const m = await this.next();
    if (m === null) return null;
    if (m.type !== type) return this.reject(`expected ${type}, got ${showFrontend(m)}`);
    const typed = m as Extract<Frontend, { type: T }>;
    const complaint = check?.(typed);
    if (complaint) return this.reject(complaint);
    return typed;
  }

  /** Writes messages, waiting while the socket's send buffer is full. */
  async send(...msgs: Uint8Array[]): Promise<void> {
    if (this.ended) throw new Rejected("connection closed");
    let b: Uint8Array;
    if (msgs.length === 1) b = msgs[0] as Uint8Array;
    else {
      const buf = new Buf();
      for (const m of msgs) buf.bytes(m);
      b = buf.done();
    }
    if (this.outPending.length === 0) {
      const n = this.socket.write(b);
      if (n < 0) throw new Rejected("connection closed");
      if (n === b.length) return;
      this.outPending.push(b.subarray(n));
    } else this.outPending.push(b);
    await new Promise<void>((r) => this.drainWaiters.push(r));
    if (this.ended && this.outPending.length > 0) throw new Rejected("connection closed");
  }

  /** Closes after what was sent has been flushed. */
  async close(): Promise<void> {
    if (this.ended) return;
    while (this.outPending.length > 0 && !this.ended) {
      await new Promise<void>((r) => this.drainWaiters.push(r));
    }
    this.ended = true;
    this.socket.end();
  }

  /** Resolves once the client has hung up or the server has stopped. */
  waitClosed(): Promise<void> {
    return new Promise((resolve) => {
      const poll = setInterval(() => {
        if (this.ended) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
    });
  }

  /** Closes at once, without an error message (a crash or a refused connection). */
  abort(): void {
    this.ended = true;
    this.socket.terminate();
  }

  /** Sends ErrorResponse(message), closes, records the rejection, and unwinds the session. */
  async reject(why: string): Promise<never> {
    this.server.rejections.push(why);
    this.server.onReject?.(why);
    if (!this.ended) {
      try {
        await this.send(be.errorResponse(`${this.server.name} (fake) rejected: ${why}`, "08P01"));
      } catch {
        // the client is gone; the rejection is recorded anyway
      }
      await this.close();
    }
    throw new Rejected(why);
  }
}

/** Sends ErrorResponse(message), closes the connection and records it in `rejections`. */
export function reject(conn: FakeConn, message: string): Promise<never> {
  return conn.reject(message);
}

interface ConnData {
  conn: FakeConn | null;
}

export interface PgServerOptions {
  /** Names the peer in rejection messages. */
  name: string;
  /** When set, AuthenticationCleartextPassword and this exact password are required. */
  password?: string | null;
  /** Called with the 0-based connection number; true closes it at once, before any reply. */
  refuse?: (n: number) => boolean;
  /** Inspects the StartupMessage parameters; a string is a rejection reason. */
  checkStartup?: (params: Record<string, string>, keys: string[]) => string | null;
  /** Waited before the authentication reply (a slow server). */
  startupDelayMs?: number;
  /** After the StartupMessage, never answer: hold the connection until it is closed. */
  silent?: () => boolean;
  /** Called for every rejection as it happens (standalone fakes print them). */
  onReject?: (why: string) => void;
  /** Default 0: any free port. */
  port?: number;
  /** Runs after ReadyForQuery; the connection is closed when it returns. */
  session: (conn: FakeConn) => Promise<void>;
}

export interface PgServer {
  readonly name: string;
  readonly port: number;
  /** Every rejection, in order. Tests assert this is empty on the happy path. */
  readonly rejections: string[];
  /** Connections accepted so far. */
  connections: number;
  /** @internal */
  onReject?: ((why: string) => void) | undefined;
  stop(): Promise<void>;
}

async function handshake(conn: FakeConn, opts: PgServerOptions): Promise<boolean> {
  for (;;) {
    const pkt = await conn.readStartupPacket();
    if (!pkt) return false;
    const [code, body] = pkt;
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      await conn.send(enc.encode("N"));
      continue;
    }
    if (code === CANCEL_REQUEST) await conn.reject("unexpected CancelRequest");
    if (code !== PROTOCOL_3_0) await conn.reject(`unsupported protocol version ${code}`);
    const text = dec.decode(body);
    if (!text.endsWith("\0\0") && text !== "\0") {
      await conn.reject("StartupMessage not NUL-terminated");
    }
    const parts = text.slice(0, -1).split("\0").slice(0, -1);
    if (parts.length % 2 !== 0) await conn.reject("StartupMessage has a key without a value");
    for (let i = 0; i < parts.length; i += 2) {
      const k = parts[i] as string;
      if (k in conn.startup) await conn.reject(`duplicate startup parameter ${k}`);
      conn.startup[k] = parts[i + 1] as string;
      conn.startupKeys.push(k);
    }
    break;
  }
  const complaint = opts.checkStartup?.(conn.startup, conn.startupKeys);
  if (complaint) await conn.reject(complaint);
  if (opts.startupDelayMs) await Bun.sleep(opts.startupDelayMs);
  if (opts.silent?.()) {
    await conn.waitClosed();
    return false;
  }
  if (opts.password != null) {
    await conn.send(be.authCleartextPassword());
    const m = await conn.next();
    if (m === null) return false;
    if (m.type !== "Password")
      await conn.reject(`expected PasswordMessage, got ${showFrontend(m)}`);
    const data = (m as { data: Uint8Array }).data;
    if (data[data.length - 1] !== 0) await conn.reject("PasswordMessage not NUL-terminated");
    if (dec.decode(data.subarray(0, -1)) !== opts.password) {
      await conn.reject("password authentication failed: wrong token");
    }
    await conn.send(be.authOk(), be.parameterStatus("client_encoding", "UTF8"), be.readyForQuery());
  } else {
    await conn.send(
      be.authOk(),
      be.parameterStatus("client_encoding", "UTF8"),
      be.parameterStatus("integer_datetimes", "on"),
      be.parameterStatus("server_version", "14.1"),
      be.readyForQuery(),
    );
  }
  return true;
}

/** Starts a fake server on 127.0.0.1, port 0. */
export async function startPgServer(opts: PgServerOptions): Promise<PgServer> {
  const rejections: string[] = [];
  const sessions = new Set<Promise<void>>();
  let listener: TCPSocketListener<ConnData> | null = null;
  const server: PgServer = {
    name: opts.name,
    port: 0,
    rejections,
    connections: 0,
    onReject: opts.onReject,
    async stop() {
      listener?.stop(true);
      listener = null;
      await Promise.allSettled([...sessions]);
    },
  };
  const run = async (conn: FakeConn) => {
    try {
      if (await handshake(conn, opts)) await opts.session(conn);
      await conn.close();
    } catch (err) {
      if (!(err instanceof Rejected)) {
        const why = `${opts.name} (fake) failed: ${(err as Error).message}`;
        rejections.push(why);
        opts.onReject?.(why);
        conn.abort();
      }
    }
  };
  listener = Bun.listen<ConnData>({
    hostname: "127.0.0.1",
    port: opts.port ?? 0,
    data: { conn: null },
    socket: {
      binaryType: "uint8array",
      open(socket) {
        const n = server.connections++;
        const conn = new FakeConn(server, socket, n);
        socket.data = { conn };
        if (opts.refuse?.(n)) {
          conn.abort();
          return;
        }
        const p = run(conn);
        sessions.add(p);
        void p.finally(() => sessions.delete(p));
      },
      data(socket, data) {
        socket.data.conn?.pushData(data);
      },
      drain(socket) {
        socket.data.conn?.onDrain();
      },
      end(socket) {
        socket.data.conn?.onEof();
      },
      close(socket) {
        socket.data.conn?.onEof();
      },
      error(socket) {
        socket.data.conn?.onEof();
      },
    },
  });
  (server as { port: number }).port = listener.port;
  return server;
}

// ---------------------------------------------------------------------------------------------
// Raw frontend bytes, for tests that must send what a well-behaved client never would

export function startupPacket(params: Record<string, string>, code = 196608): Uint8Array {
  const body = Buffer.concat([
    ...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)),
    Buffer.from([0]),
  ]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(body.length + 8, 0);
  head.writeInt32BE(code, 4);
  return Buffer.concat([head, body]);
}

export function feMessage(type: string, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const head = Buffer.alloc(5);
  head.write(type, 0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/**
 * Sends `out` and collects everything until the server closes (or `timeoutMs`). `sslRequests`:
 * how many one-byte SSL answers lead the reply.
 */
export async function rawExchange(
  port: number,
  out: Uint8Array[],
  { timeoutMs = 3000, sslRequests = 0 } = {},
) {
  const got: Uint8Array[] = [];
  let closed = false;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      sock?.terminate();
      resolve();
    }, timeoutMs);
    let sock: Awaited<ReturnType<typeof Bun.connect>> | undefined;
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        binaryType: "uint8array",
        open(s) {
          for (const b of out) s.write(b);
        },
        data(_s, d) {
          got.push(new Uint8Array(d));
        },
        close() {
          closed = true;
          clearTimeout(timer);
          resolve();
        },
      },
    }).then((s) => {
      sock = s;
    }, reject);
  });
  const bytes = Buffer.concat(got);
  const ssl = bytes.subarray(0, sslRequests).toString();
  return { bytes, closed, ssl, types: messageTypes(bytes.subarray(sslRequests)) };
}

/** The type bytes of the backend messages in `b`. */
export function messageTypes(b: Buffer): string[] {
  const types: string[] = [];
  let o = 0;
  while (o + 5 <= b.length) {
    types.push(String.fromCharCode(b[o] as number));
    o += 1 + b.readInt32BE(o + 1);
  }
  return types;
}
