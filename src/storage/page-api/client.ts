// The pageserver's gRPC page service (package page_api), as compute_ctl uses it: the basebackup
// as a server stream of chunks, and LSN leases. Cleartext HTTP/2 (h2c) through Connect's gRPC
// transport on node:http2.
//
// Each call gets a connection of its own, opened before the request and closed after it, so a
// failed attempt is visible to the caller at once: Connect has no retries of its own, and no
// channel survives to reconnect in the background. No gRPC message compression is offered
// (no grpc-accept-encoding header): the basebackup chunks are already gzip, and a server that
// supports gzip responses would compress them a second time.
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { type Lsn, parseLsn } from "../../api/lsn.ts";
import {
  BaseBackupCompression,
  GetBaseBackupRequestSchema,
  LeaseLsnRequestSchema,
  PageService,
} from "./page_service_pb.ts";

/** Who a call is for: the pageserver URL and the metadata every page_api request carries. */
export interface PageApiTarget {
  /** The shard's `grpc_url`, `grpc://no_user@host:port`. */
  url: string;
  tenantId: string;
  timelineId: string;
  /** ShardIndex display: shard number and count as two hex digits each ("0000" unsharded). */
  shardId: string;
  token: string | null;
}

// The stream's flow-control window, as hyper's HTTP/2 client (tonic's transport) sets it: it
// bounds what the server can have in flight towards a slow reader. The connection window stays at
// HTTP/2's 64 KiB default: Bun 1.4's node:http2 stalls every stream at 65,535 bytes once
// session.setLocalWindowSize() has been called, so it is not called.
const STREAM_WINDOW = 2 << 20;
// A chunk is bounded by the 4 MiB gRPC message limit; anything much larger is not a chunk.
const READ_MAX_BYTES = 8 << 20;

/** ShardIndex's display form, as the `neon-shard-id` header carries it. */
export function shardIndexId(shardNumber: number, shardCount: number): string {
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  return `${hex(shardNumber)}${hex(shardCount)}`;
}

/**
 * `grpc://[user@]host:port` (or `http://`) -> the h2c origin `http://host:port`. The user part
 * (`no_user`) carries nothing in gRPC and is dropped. TLS is not offered by the pageserver's
 * page service to computes, so `https`/`grpcs` are refused rather than tried.
 */
export function grpcOrigin(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid pageserver gRPC URL ${JSON.stringify(url)}`);
  }
  if (u.protocol !== "grpc:" && u.protocol !== "http:") {
    throw new Error(
      `unsupported pageserver gRPC URL scheme ${JSON.stringify(u.protocol.slice(0, -1))} in ${JSON.stringify(url)} (expected grpc://host:port)`,
    );
  }
  if (!u.hostname) throw new Error(`pageserver gRPC URL ${JSON.stringify(url)} has no host`);
  if (!u.port) throw new Error(`pageserver gRPC URL ${JSON.stringify(url)} has no port`);
  if ((u.pathname !== "" && u.pathname !== "/") || u.search) {
    throw new Error(`pageserver gRPC URL ${JSON.stringify(url)} must not have a path or query`);
  }
  return `http://${u.hostname}:${u.port}`;
}

function metadata(t: PageApiTarget): Record<string, string> {
  const h: Record<string, string> = {
    "neon-tenant-id": t.tenantId,
    "neon-timeline-id": t.timelineId,
    "neon-shard-id": t.shardId,
  };
  if (t.token !== null) h.authorization = `Bearer ${t.token}`;
  return h;
}

/** One HTTP/2 connection to one pageserver, and a page_api client on it. */
class PageApiConnection {
  private constructor(
    readonly origin: string,
    private readonly session: Http2SessionManager,
    readonly client: ReturnType<typeof createClient<typeof PageService>>,
  ) {}

  /** Connects (TCP and the HTTP/2 preface); rejects when the server cannot be reached. */
  static async open(target: PageApiTarget, signal?: AbortSignal): Promise<PageApiConnection> {
    const origin = grpcOrigin(target.url);
    const session = new Http2SessionManager(
      origin,
      // No keepalive pings and no idle timeout: the connection lives for one call.
      { pingIntervalMs: 2 ** 31 - 1, idleConnectionTimeoutMs: 2 ** 31 - 1 },
      { settings: { initialWindowSize: STREAM_WINDOW } },
    );
    const onAbort = () => session.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const state = await session.connect();
      if (signal?.aborted) throw signal.reason;
      if (state === "error") {
        throw new ConnectError(
          `cannot connect to ${origin}`,
          Code.Unavailable,
          undefined,
          undefined,
          session.error(),
        );
      }
    } catch (err) {
      session.abort();
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    const transport = createGrpcTransport({
      baseUrl: origin,
      sessionManager: session,
      acceptCompression: [],
      readMaxBytes: READ_MAX_BYTES,
    });
    return new PageApiConnection(origin, session, createClient(PageService, transport));
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
    this.session.abort();
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
}): Promise<GrpcBasebackup> {
  const started = performance.now();
  const conn = await PageApiConnection.open(opts.target);
  const connectMicros = Math.round((performance.now() - started) * 1000);
  const abort = new AbortController();
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
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      for await (const r of responses) {
        if (r.chunk.length > 0) yield r.chunk;
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
