// Who a page_api call is for, and the URL form the spec gives for it. Kept apart from the gRPC
// client (grpc.ts) so that code naming a target does not load HTTP/2, Connect and protobuf.

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
