// A STRICT fake pageserver for the gRPC page service (package page_api), speaking real gRPC over
// cleartext HTTP/2 with node:http2. Its protobuf and gRPC framing are decoded here by hand, not
// by the library compute_ctl uses, so a client bug cannot hide behind a shared codec.
//
//   every call  POST, :scheme http, content-type application/grpc[+proto], te: trailers, no
//               grpc-encoding other than identity, and no grpc-accept-encoding offering a real
//               compression (the basebackup is gzip already; a pageserver would compress it again).
//               neon-tenant-id / neon-timeline-id must name the fake's timeline, neon-shard-id the
//               expected shard; authorization is "Bearer <token>" exactly when there is a token.
//               Exactly one uncompressed request message, every field known with its wire type.
//   GetBaseBackup  {lsn: u64 (0 = latest), replica: bool, full: bool, compression: enum}:
//               full must be false, compression GZIP (2), replica as expected; the shard must be 0.
//               Answer: chunks of `chunkSize` bytes (256 KiB, as the pageserver), then status OK.
//   LeaseLsn    {lsn: u64 != 0} -> {expires: Timestamp}, or FAILED_PRECONDITION when refused.
// A request the real pageserver would refuse is answered with the status it would use
// (INVALID_ARGUMENT, UNAUTHENTICATED, UNIMPLEMENTED ...) and recorded in `rejections`.
import http2 from "node:http2";
import type { Socket } from "node:net";

export interface GrpcPageserverFaults {
  /** Close the first N TCP connections at once, before the HTTP/2 preface. */
  refuseConnections?: number;
  /** Answer the first N calls with status UNAVAILABLE and no messages. */
  unavailable?: number;
  /** Send this many chunks, then status INTERNAL instead of the rest. */
  errorAfterChunks?: number;
  /** Send every chunk, then status INTERNAL instead of OK (an error after the complete tar). */
  errorAfterData?: boolean;
  /** Send only the first half of the gzip bytes, then status OK. */
  truncateGzip?: boolean;
  /** Send this many chunks, then reset the stream (RST_STREAM INTERNAL_ERROR). */
  resetAfterChunks?: number;
  /** Send this many chunks, then drop the TCP connection (no status at all). */
  dropAfterChunks?: number;
  /** Wait this long before the response headers of every call. */
  slowMs?: number;
  /** Wait this long between chunks. */
  chunkDelayMs?: number;
  /** Chunk size; default 256 KiB (the pageserver's). */
  chunkSize?: number;
  /**
   * The stream faults above (error, truncation, reset, drop) apply to the first N basebackup
   * calls only; later calls are served whole. Default: every call.
   */
  faultyCalls?: number;
}

export interface FakeGrpcPageserverOptions {
  /** The gzip'd tar to serve, whole or streamed. */
  basebackup: () => Uint8Array | AsyncIterable<Uint8Array>;
  token?: string | null;
  tenantId: string;
  timelineId: string;
  /** The shard count of the tenant (0 = unsharded); the basebackup must come from shard 0. */
  shardCount?: number;
  /** neon-shard-id a lease must carry (default shard 0 of shardCount). */
  leaseShardId?: string;
  /** The replica flag a basebackup request must carry (any when undefined). */
  expectReplica?: boolean;
  /** Expiry in unix ms, or null: FAILED_PRECONDITION. Default: now + 10 minutes. */
  lease?: (lsn: bigint) => number | null;
  faults?: GrpcPageserverFaults;
  port?: number;
}

export interface GrpcPageserverRequest {
  at: number;
  method: "GetBaseBackup" | "LeaseLsn";
  headers: Record<string, string>;
  fields: Record<string, bigint | boolean | Uint8Array>;
}

export interface FakeGrpcPageserver {
  port: number;
  /** A `grpc_url` for the shard. */
  url: string;
  requests: GrpcPageserverRequest[];
  rejections: string[];
  /** TCP connections accepted (refused ones included) and basebackup chunks written. */
  stats: { connections: number; chunksSent: number };
  stop(): Promise<void>;
}

// gRPC status codes.
const OK = 0;
const INVALID_ARGUMENT = 3;
const FAILED_PRECONDITION = 9;
const UNIMPLEMENTED = 12;
const INTERNAL = 13;
const UNAVAILABLE = 14;
const UNAUTHENTICATED = 16;

const SERVICE = "/page_api.PageService/";
const ID_RE = /^[0-9a-f]{32}$/;
const SHARD_RE = /^[0-9a-f]{4}$/;

class Rejected extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

// --- protobuf, by hand --------------------------------------------------------------------------

function readVarint(b: Uint8Array, pos: { o: number }): bigint {
  let v = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (pos.o >= b.length) throw new Rejected(INTERNAL, "truncated varint in request message");
    const byte = b[pos.o++] as number;
    v |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      if (v >= 1n << 64n) throw new Rejected(INTERNAL, "varint overflows 64 bits");
      return v;
    }
  }
  throw new Rejected(INTERNAL, "varint longer than 10 bytes");
}

type FieldKind = "u64" | "bool" | "enum";

/** Decodes a message whose fields are all varints; unknown fields and wrong wire types throw. */
function decodeVarintFields(
  b: Uint8Array,
  schema: Record<number, [string, FieldKind]>,
): Record<string, bigint | boolean> {
  const out: Record<string, bigint | boolean> = {};
  const pos = { o: 0 };
  while (pos.o < b.length) {
    const key = readVarint(b, pos);
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    const spec = schema[field];
    if (!spec) throw new Rejected(INTERNAL, `unknown field ${field} in request message`);
    const [name, kind] = spec;
    if (wire !== 0) {
      throw new Rejected(INTERNAL, `field ${name} has wire type ${wire}, expected varint (0)`);
    }
    const v = readVarint(b, pos);
    if (kind === "bool") {
      if (v > 1n) throw new Rejected(INTERNAL, `field ${name}: invalid bool ${v}`);
      out[name] = v === 1n;
    } else out[name] = v;
  }
  return out;
}

function varint(v: bigint | number): number[] {
  let x = BigInt(v);
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

/** A gRPC length-prefixed message frame (uncompressed). */
function frame(message: Uint8Array): Buffer {
  const f = Buffer.alloc(5 + message.length);
  f.writeUInt32BE(message.length, 1);
  f.set(message, 5);
  return f;
}

function chunkMessage(chunk: Uint8Array): Buffer {
  // GetBaseBackupResponseChunk { bytes chunk = 1 }
  return frame(Buffer.concat([Buffer.from([0x0a, ...varint(chunk.length)]), chunk]));
}

function leaseMessage(expiresMs: number): Buffer {
  // LeaseLsnResponse { Timestamp expires = 1 { int64 seconds = 1; int32 nanos = 2 } }
  const seconds = Math.floor(expiresMs / 1000);
  const nanos = (expiresMs - seconds * 1000) * 1_000_000;
  const ts = [0x08, ...varint(seconds), ...(nanos ? [0x10, ...varint(nanos)] : [])];
  return frame(Buffer.from([0x0a, ...varint(ts.length), ...ts]));
}

// --- the server ----------------------------------------------------------------------------------

async function* rechunk(
  src: Uint8Array | AsyncIterable<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array> {
  const it: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
    src instanceof Uint8Array ? [src] : src;
  let pending = Buffer.alloc(0);
  for await (const chunk of it) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : Buffer.from(chunk);
    while (pending.length >= size) {
      yield pending.subarray(0, size);
      pending = pending.subarray(size);
    }
  }
  if (pending.length) yield pending;
}

async function collect(src: Uint8Array | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  if (src instanceof Uint8Array) return src;
  const parts: Uint8Array[] = [];
  for await (const c of src) parts.push(c);
  return Buffer.concat(parts);
}

function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(",") : v;
}

export async function startFakeGrpcPageserver(
  opts: FakeGrpcPageserverOptions,
): Promise<FakeGrpcPageserver> {
  const faults = opts.faults ?? {};
  const allFaults = faults;
  let basebackupCalls = 0;
  const chunkSize = faults.chunkSize ?? 256 << 10;
  const shardCount = opts.shardCount ?? 0;
  const hex2 = (n: number) => n.toString(16).padStart(2, "0");
  const shard0 = `00${hex2(shardCount)}`;
  const leaseShard = opts.leaseShardId ?? shard0;
  const lease = opts.lease ?? (() => Date.now() + 600_000);
  const requests: GrpcPageserverRequest[] = [];
  const rejections: string[] = [];
  const stats = { connections: 0, chunksSent: 0 };
  let calls = 0;
  const sockets = new Set<Socket>();

  /** The checks the pageserver's interceptors and tonic make before the handler runs. */
  const checkHeaders = (h: http2.IncomingHttpHeaders, shardWanted: string) => {
    if (h[":method"] !== "POST") throw new Rejected(UNIMPLEMENTED, `method ${h[":method"]}`);
    if (h[":scheme"] !== "http") throw new Rejected(INTERNAL, `:scheme ${h[":scheme"]}`);
    const ct = headerText(h["content-type"]);
    if (ct !== "application/grpc" && ct !== "application/grpc+proto") {
      throw new Rejected(INTERNAL, `content-type ${JSON.stringify(ct)}`);
    }
    if (headerText(h.te) !== "trailers") throw new Rejected(INTERNAL, `te ${h.te}`);
    const enc = headerText(h["grpc-encoding"]);
    if (enc !== undefined && enc !== "identity") {
      throw new Rejected(UNIMPLEMENTED, `grpc-encoding ${enc}: requests are not compressed`);
    }
    const accept = headerText(h["grpc-accept-encoding"]);
    if (accept?.split(",").some((e) => e.trim() !== "identity")) {
      throw new Rejected(
        INVALID_ARGUMENT,
        `grpc-accept-encoding ${JSON.stringify(accept)} would have the gzip basebackup compressed again`,
      );
    }
    const tenant = headerText(h["neon-tenant-id"]);
    if (tenant === undefined) throw new Rejected(INVALID_ARGUMENT, "missing neon-tenant-id");
    if (!ID_RE.test(tenant)) throw new Rejected(INVALID_ARGUMENT, "invalid neon-tenant-id");
    const timeline = headerText(h["neon-timeline-id"]);
    if (timeline === undefined) throw new Rejected(INVALID_ARGUMENT, "missing neon-timeline-id");
    if (!ID_RE.test(timeline)) throw new Rejected(INVALID_ARGUMENT, "invalid neon-timeline-id");
    const shard = headerText(h["neon-shard-id"]);
    if (shard === undefined) throw new Rejected(INVALID_ARGUMENT, "missing neon-shard-id");
    if (!SHARD_RE.test(shard)) throw new Rejected(INVALID_ARGUMENT, "invalid neon-shard-id");
    const auth = headerText(h.authorization);
    if (opts.token) {
      if (auth === undefined) throw new Rejected(UNAUTHENTICATED, "no authorization header");
      if (!auth.startsWith("Bearer ")) {
        throw new Rejected(INVALID_ARGUMENT, "invalid authorization header");
      }
      if (auth.slice(7).trim() !== opts.token) {
        throw new Rejected(INVALID_ARGUMENT, "invalid JWT token: not the expected token");
      }
    } else if (auth !== undefined) {
      throw new Rejected(INVALID_ARGUMENT, "authorization header sent without a token");
    }
    if (tenant !== opts.tenantId) throw new Rejected(INVALID_ARGUMENT, `unknown tenant ${tenant}`);
    if (timeline !== opts.timelineId) {
      throw new Rejected(INVALID_ARGUMENT, `unknown timeline ${timeline}`);
    }
    if (shard !== shardWanted) {
      throw new Rejected(INVALID_ARGUMENT, `neon-shard-id ${shard}, expected ${shardWanted}`);
    }
    const seen: Record<string, string> = {};
    for (const [k, v] of Object.entries(h)) if (!k.startsWith(":")) seen[k] = headerText(v) ?? "";
    return seen;
  };

  /** Reads the request body: exactly one uncompressed length-prefixed message. */
  const readMessage = async (stream: http2.ServerHttp2Stream): Promise<Uint8Array> => {
    const parts: Buffer[] = [];
    for await (const d of stream) parts.push(d as Buffer);
    const body = Buffer.concat(parts);
    if (body.length < 5) throw new Rejected(INTERNAL, "request without a message");
    if (body[0] !== 0) throw new Rejected(INTERNAL, "compressed request message");
    const len = body.readUInt32BE(1);
    if (body.length !== 5 + len) {
      throw new Rejected(
        INTERNAL,
        `request body of ${body.length} bytes for one message of ${len}`,
      );
    }
    return body.subarray(5);
  };

  const respond = (stream: http2.ServerHttp2Stream) => {
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
  };

  const finish = (stream: http2.ServerHttp2Stream, code: number, message?: string) => {
    if (stream.destroyed || stream.closed) return;
    stream.once("wantTrailers", () => {
      const t: http2.OutgoingHttpHeaders = { "grpc-status": String(code) };
      if (message) t["grpc-message"] = encodeURIComponent(message);
      stream.sendTrailers(t);
    });
    stream.end();
  };

  /** Trailers-only response: the status in the headers, no body. */
  const failFast = (stream: http2.ServerHttp2Stream, code: number, message: string) => {
    if (stream.destroyed || stream.closed) return;
    stream.respond(
      {
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": String(code),
        "grpc-message": encodeURIComponent(message),
      },
      { endStream: true },
    );
  };

  const write = async (stream: http2.ServerHttp2Stream, data: Buffer) => {
    if (stream.destroyed) throw new Error("stream closed by the client");
    if (!stream.write(data)) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          stream.off("drain", done);
          stream.off("close", closed);
          resolve();
        };
        const closed = () => {
          stream.off("drain", done);
          reject(new Error("stream closed by the client"));
        };
        stream.once("drain", done);
        stream.once("close", closed);
      });
    }
  };

  const checkBasebackup = (body: Uint8Array) => {
    const f = decodeVarintFields(body, {
      1: ["lsn", "u64"],
      2: ["replica", "bool"],
      3: ["full", "bool"],
      4: ["compression", "enum"],
    });
    if (f.full === true) throw new Rejected(INVALID_ARGUMENT, "full basebackup requested");
    if (f.compression !== 2n) {
      throw new Rejected(INVALID_ARGUMENT, `compression ${f.compression ?? 0n}, expected GZIP (2)`);
    }
    const replica = f.replica === true;
    if (opts.expectReplica !== undefined && replica !== opts.expectReplica) {
      throw new Rejected(INVALID_ARGUMENT, `replica=${replica}, expected ${opts.expectReplica}`);
    }
    return f;
  };

  const streamBasebackup = async (stream: http2.ServerHttp2Stream, faulty: boolean) => {
    const faults: GrpcPageserverFaults = faulty ? allFaults : {};
    respond(stream);
    let src = opts.basebackup();
    if (faults.truncateGzip) {
      const all = await collect(src);
      src = all.subarray(0, Math.floor(all.length / 2));
    }
    let n = 0;
    for await (const chunk of rechunk(src, chunkSize)) {
      if (faults.errorAfterChunks !== undefined && n >= faults.errorAfterChunks) {
        return finish(stream, INTERNAL, "basebackup failed: injected error");
      }
      if (faults.resetAfterChunks !== undefined && n >= faults.resetAfterChunks) {
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
      }
      if (faults.dropAfterChunks !== undefined && n >= faults.dropAfterChunks) {
        stream.session?.socket.destroy();
        return;
      }
      if (faults.chunkDelayMs && n > 0) await Bun.sleep(faults.chunkDelayMs);
      await write(stream, chunkMessage(chunk));
      n++;
      stats.chunksSent++;
    }
    if (faults.errorAfterData) {
      return finish(stream, INTERNAL, "basebackup failed: injected error after data");
    }
    finish(stream, OK);
  };

  const server = http2.createServer();
  server.on("connection", (socket: Socket) => {
    const n = stats.connections++;
    if (n < (faults.refuseConnections ?? 0)) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("sessionError", () => undefined);
  server.on("stream", (s, headers) => {
    const stream = s as http2.ServerHttp2Stream;
    stream.on("error", () => undefined);
    void (async () => {
      const path = headers[":path"] ?? "";
      const method = path.startsWith(SERVICE) ? path.slice(SERVICE.length) : "";
      try {
        if (method !== "GetBaseBackup" && method !== "LeaseLsn") {
          throw new Rejected(UNIMPLEMENTED, `unknown method ${path}`);
        }
        const seen = checkHeaders(headers, method === "GetBaseBackup" ? shard0 : leaseShard);
        const body = await readMessage(stream);
        const call = calls++;
        if (method === "GetBaseBackup") {
          const fields = checkBasebackup(body);
          requests.push({ at: Date.now(), method, headers: seen, fields });
          if (faults.slowMs) await Bun.sleep(faults.slowMs);
          if (call < (faults.unavailable ?? 0)) {
            return failFast(stream, UNAVAILABLE, "shutting down");
          }
          await streamBasebackup(stream, basebackupCalls++ < (faults.faultyCalls ?? Infinity));
        } else {
          const fields = decodeVarintFields(body, { 1: ["lsn", "u64"] });
          const lsn = (fields.lsn as bigint | undefined) ?? 0n;
          if (lsn === 0n) throw new Rejected(INVALID_ARGUMENT, "invalid lsn: 0");
          requests.push({ at: Date.now(), method, headers: seen, fields });
          if (faults.slowMs) await Bun.sleep(faults.slowMs);
          if (call < (faults.unavailable ?? 0)) {
            return failFast(stream, UNAVAILABLE, "shutting down");
          }
          const until = lease(lsn);
          if (until === null) {
            return failFast(stream, FAILED_PRECONDITION, `LSN ${lsn} is below the GC cutoff`);
          }
          respond(stream);
          await write(stream, leaseMessage(until));
          finish(stream, OK);
        }
      } catch (err) {
        if (err instanceof Rejected) {
          rejections.push(err.message);
          failFast(stream, err.code, err.message);
        } else if (!stream.destroyed) {
          stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        }
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `grpc://no_user@127.0.0.1:${port}`,
    requests,
    rejections,
    stats,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
