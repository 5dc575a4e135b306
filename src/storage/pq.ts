// A small PostgreSQL v3 frontend for Neon's storage servers (pageserver, safekeepers), which speak
// only a subset of the protocol (libs/postgres_backend): startup, cleartext password, simple Query,
// and the extended-protocol messages that `copy_out` needs. The messages sent mirror Neon's fork
// of rust-postgres (tokio-postgres), the client the reference uses:
//   startup: client_encoding=UTF8, user, [database], [options], [application_name]; no SSLRequest
//   simpleQuery: Query
//   copyOut: Parse(sN)+Describe(S,sN)+Sync, then Bind(""<-sN, result formats [1])+Execute("",0)+Sync,
//            then (once CopyOutResponse arrived, as the dropped Statement does) Close(S,sN)+Sync.
// Plain TCP only: the reference connects with NoTls.
import type { Socket } from "bun";
import { log } from "../log.ts";
import { ByteQueue } from "../util/byte-queue.ts";
import {
  type BackendMessage,
  bindMessage,
  closeMessage,
  concat,
  dec,
  describe,
  describeMessage,
  enc,
  errorFields,
  executeMessage,
  msg,
  PqError,
  parseMessage,
  passwordMessage,
  queryMessage,
  Reader,
  SYNC,
  startupMessage,
  TERMINATE,
} from "./pq/messages.ts";

export { type ConnParams, parseConnstring } from "./pq/connstring.ts";
export { PqError };

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
/**
 * A declared message length past these is refused before its body is buffered: libpq's rule
 * (30,000 bytes, except the message types that carry data) and a hard cap for the rest, so a
 * hostile server cannot make the client hold an arbitrarily large message.
 */
const MAX_SHORT_MESSAGE = 30_000;
const MAX_LONG_MESSAGE = 64 << 20;
const LONG_MESSAGE_TYPES = new Set(["T", "D", "d", "V", "E", "N", "A"]);
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
        const inner = new Bun.CryptoHasher("md5").update(needPassword() + user).digest("hex");
        const outer = new Bun.CryptoHasher("md5").update(inner).update(salt).digest("hex");
        await this.write(passwordMessage(enc.encode(`md5${outer}`)));
        break;
      }
      case 10: {
        const mechanisms: string[] = [];
        for (let s = r.cstr(); s !== ""; s = r.cstr()) mechanisms.push(s);
        if (!mechanisms.includes("SCRAM-SHA-256")) {
          throw new Error(`unsupported SASL mechanisms: ${mechanisms.join(", ")}`);
        }
        // SCRAM needs node:crypto (PBKDF2, HMAC): loaded for the peers that ask for it.
        const { scramClient } = await import("./pq/scram.ts");
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
        const type = String.fromCharCode(this.inbuf.peek());
        const max = LONG_MESSAGE_TYPES.has(type) ? MAX_LONG_MESSAGE : MAX_SHORT_MESSAGE;
        if (len > max) {
          throw new Error(
            `message '${type}' of ${len} bytes from ${this.label} exceeds the limit of ${max}`,
          );
        }
        if (this.inbuf.length < len + 1) break;
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
