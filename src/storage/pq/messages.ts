// PostgreSQL v3 protocol framing for the storage client: the frontend messages it sends, written
// as tokio-postgres writes them, and the backend messages it reads, framed from a queue of
// received chunks without concatenating them.

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

export const enc = new TextEncoder();
export const dec = new TextDecoder();

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
export function msg(type: string, body: (w: Writer) => void = () => {}): Uint8Array {
  const w = new Writer();
  body(w);
  const b = w.bytes();
  return new Writer()
    .byte(type.charCodeAt(0))
    .i32(b.length + 4)
    .raw(b)
    .bytes();
}

export function concat(parts: Uint8Array[]): Uint8Array {
  return parts.reduce((w, p) => w.raw(p), new Writer()).bytes();
}

const PROTOCOL_3_0 = 196608;

export function startupMessage(params: [string, string][]): Uint8Array {
  const w = new Writer().i32(PROTOCOL_3_0);
  for (const [k, v] of params) w.cstr(k).cstr(v);
  w.byte(0);
  const b = w.bytes();
  return new Writer()
    .i32(b.length + 4)
    .raw(b)
    .bytes();
}

export const passwordMessage = (pw: Uint8Array) => msg("p", (w) => w.raw(pw).byte(0));
export const queryMessage = (sql: string) => msg("Q", (w) => w.cstr(sql));
export const parseMessage = (name: string, sql: string) =>
  msg("P", (w) => w.cstr(name).cstr(sql).i16(0));
export const describeMessage = (kind: "S" | "P", name: string) =>
  msg("D", (w) => w.byte(kind.charCodeAt(0)).cstr(name));
// tokio-postgres binds with no parameters and one result-format code, 1 (binary).
export const bindMessage = (portal: string, stmt: string) =>
  msg("B", (w) => w.cstr(portal).cstr(stmt).i16(0).i16(0).i16(1).i16(1));
export const executeMessage = (portal: string) => msg("E", (w) => w.cstr(portal).i32(0));
export const closeMessage = (kind: "S" | "P", name: string) =>
  msg("C", (w) => w.byte(kind.charCodeAt(0)).cstr(name));
export const SYNC = msg("S");
export const TERMINATE = msg("X");

// ---------------------------------------------------------------------------------------------
// Message decoding

export interface BackendMessage {
  type: string;
  body: Uint8Array;
}

export class Reader {
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

export function errorFields(body: Uint8Array): Record<string, string> {
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

export function describe(m: BackendMessage): string {
  return `${MESSAGE_NAMES[m.type] ?? "unknown"} ('${m.type}')`;
}
