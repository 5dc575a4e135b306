// The pageserver's gRPC page service (package page_api), as compute_ctl uses it: the basebackup
// as a server stream of chunks, and LSN leases. Cleartext HTTP/2 (h2c) through Connect's gRPC
// transport on node:http2.
//
// Each call gets a connection of its own, opened before the request and closed after it, so a
// failed attempt is visible to the caller at once. Connect has no retries of its own; its stock
// session manager does reconnect when a connection closes before a request is sent, so it is
// replaced by one that never does (SingleConnection). No gRPC message compression is offered
// (no grpc-accept-encoding header): the basebackup chunks are already gzip, and a server that
// supports gzip responses would compress them a second time.

import http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type Lsn, parseLsn } from "../../api/lsn.ts";
import {
  BaseBackupCompression,
  GetBaseBackupRequestSchema,
  LeaseLsnRequestSchema,
  PageService,
} from "./page_service_pb.ts";
import { grpcOrigin, type PageApiTarget } from "./target.ts";

// The stream's flow-control window, as hyper's HTTP/2 client (tonic's transport) sets it: it
// bounds what the server can have in flight towards a slow reader. The connection window stays at
// HTTP/2's 64 KiB default: Bun 1.4's node:http2 stalls every stream at 65,535 bytes once
// session.setLocalWindowSize() has been called, so it is not called.
const STREAM_WINDOW = 2 << 20;
// A chunk is bounded by the 4 MiB gRPC message limit; anything much larger is not a chunk.
const READ_MAX_BYTES = 8 << 20;

function metadata(t: PageApiTarget): Record<string, string> {
  const h: Record<string, string> = {
    "neon-tenant-id": t.tenantId,
    "neon-timeline-id": t.timelineId,
    "neon-shard-id": t.shardId,
  };
  if (t.token !== null) h.authorization = `Bearer ${t.token}`;
  return h;
}

type SessionManager = NonNullable<Parameters<typeof createGrpcTransport>[0]["sessionManager"]>;

/**
 * The session manager Connect's transport asks for a stream: one HTTP/2 connection, opened once.
 * A request on a connection that has gone away fails; it is never reopened.
 */
class SingleConnection implements SessionManager {
  private constructor(
    readonly authority: string,
    private readonly session: http2.ClientHttp2Session,
  ) {}

  /** Connects (TCP and the HTTP/2 preface); rejects when the server cannot be reached. */
  static open(origin: string, signal?: AbortSignal): Promise<SingleConnection> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(origin, { settings: { initialWindowSize: STREAM_WINDOW } });
      // Errors after the connect reach the call through its stream.
      session.on("error", () => undefined);
      const fail = (cause: unknown) => {
        cleanup();
        session.destroy();
        reject(
          new ConnectError(
            `cannot connect to ${origin}`,
            Code.Unavailable,
            undefined,
            undefined,
            cause,
          ),
        );
      };
      const onError = (err: Error) => fail(err);
      const onClose = () => fail(new Error("connection closed"));
      const onAbort = () => {
        cleanup();
        session.destroy();
        reject(signal?.reason);
      };
      const cleanup = () => {
        session.off("connect", onConnect);
        session.off("error", onError);
        session.off("close", onClose);
        signal?.removeEventListener("abort", onAbort);
      };
      const onConnect = () => {
        cleanup();
        resolve(new SingleConnection(origin, session));
      };
      if (signal?.aborted) return onAbort();
      session.once("connect", onConnect);
      session.once("error", onError);
      session.once("close", onClose);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream> {
    if (this.session.closed || this.session.destroyed) {
      throw new ConnectError(
        `connection to ${this.authority} closed before the call was sent`,
        Code.Unavailable,
      );
    }
    return this.session.request({ ...headers, ":method": method, ":path": path }, options);
  }

  notifyResponseByteRead(): void {}

  close(): void {
    this.session.destroy();
  }
}

/** One HTTP/2 connection to one pageserver, and a page_api client on it. */
class PageApiConnection {
  private constructor(
    readonly origin: string,
    private readonly connection: SingleConnection,
    readonly client: ReturnType<typeof createClient<typeof PageService>>,
  ) {}

  static async open(target: PageApiTarget, signal?: AbortSignal): Promise<PageApiConnection> {
    const origin = grpcOrigin(target.url);
    const connection = await SingleConnection.open(origin, signal);
    const transport = createGrpcTransport({
      baseUrl: origin,
      sessionManager: connection,
      acceptCompression: [],
      readMaxBytes: READ_MAX_BYTES,
    });
    return new PageApiConnection(origin, connection, createClient(PageService, transport));
  }

  /**
   * A call's error as the caller should read it: node:http2 reports a connection the server
   * closed before answering as a CANCEL of the stream, which Connect maps to CANCELED; unless
   * we cancelled it ourselves, that is the server going away (UNAVAILABLE).
   */
  explain(err: unknown, ourAbort: AbortSignal | undefined): unknown {
    if (err instanceof ConnectError && err.code === Code.Canceled && !ourAbort?.aborted) {
      return new ConnectError(
        `connection to ${this.origin} closed before the call completed`,
        Code.Unavailable,
        undefined,
        undefined,
        err,
      );
    }
    return err;
  }

  close(): void {
    this.connection.close();
  }
}

function toLsn(lsn: string | Lsn): Lsn {
  return typeof lsn === "bigint" ? lsn : parseLsn(lsn);
}

export interface GrpcBasebackup {
  connectMicros: number;
  /** The chunks' bytes, in order: together one gzip stream of a tar. */
  stream: AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

/**
 * Opens `GetBaseBackup` on shard 0: `{lsn (0 = latest), replica, full: false, compression: GZIP}`.
 * The returned stream yields each chunk as it arrives and throws the call's error (a non-OK
 * status, a reset stream, a lost connection) where it happens; it ends only after status OK.
 */
export async function openGrpcBasebackup(opts: {
  target: PageApiTarget;
  lsn: string | Lsn;
  replica: boolean;
  /** Aborting fails the connect or the stream, whichever is under way. */
  signal?: AbortSignal;
}): Promise<GrpcBasebackup> {
  const started = performance.now();
  const conn = await PageApiConnection.open(opts.target, opts.signal);
  const connectMicros = Math.round((performance.now() - started) * 1000);
  const closed = new AbortController();
  const abort = {
    signal: opts.signal ? AbortSignal.any([closed.signal, opts.signal]) : closed.signal,
    abort: (reason: unknown) => closed.abort(reason),
  };
  const request = create(GetBaseBackupRequestSchema, {
    lsn: toLsn(opts.lsn),
    replica: opts.replica,
    full: false,
    compression: BaseBackupCompression.GZIP,
  });
  const responses = conn.client.getBaseBackup(request, {
    headers: metadata(opts.target),
    signal: abort.signal,
  });
  // Connect sends the request at once and its first read fails as soon as an error status
  // arrives; the reader may start a little later, so that first read is started (and its
  // failure held) now rather than reported as an unhandled rejection in between.
  const it = responses[Symbol.asyncIterator]();
  const first = it.next();
  first.catch(() => undefined);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      for (let r = await first; !r.done; r = await it.next()) {
        if (r.value.chunk.length > 0) yield r.value.chunk;
      }
    } catch (err) {
      throw conn.explain(err, abort.signal);
    }
  }
  return {
    connectMicros,
    stream: chunks(),
    close: async () => {
      abort.abort(new Error("basebackup closed"));
      conn.close();
    },
  };
}

/**
 * `LeaseLsn` on one pageserver for one shard: the expiry in unix ms, or null when the lease is
 * refused (FAILED_PRECONDITION: the LSN is already below the GC cutoff). Other errors throw.
 */
export async function leaseLsnGrpc(opts: {
  target: PageApiTarget;
  lsn: string | Lsn;
  signal?: AbortSignal;
}): Promise<number | null> {
  const conn = await PageApiConnection.open(opts.target, opts.signal);
  try {
    const r = await conn.client.leaseLsn(create(LeaseLsnRequestSchema, { lsn: toLsn(opts.lsn) }), {
      headers: metadata(opts.target),
      signal: opts.signal,
    });
    if (!r.expires) throw new Error("lease response without an expiry");
    return Math.floor(timestampMs(r.expires));
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.FailedPrecondition) return null;
    throw conn.explain(err, opts.signal);
  } finally {
    conn.close();
  }
}
