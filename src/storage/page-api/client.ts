// The pageserver's gRPC page service, as the rest of compute_ctl calls it. The client itself
// (grpc.ts: node:http2, Connect, protobuf; ~20 MiB of resident memory once loaded) is imported on
// the first call, so a compute that gets its basebackup over libpq never loads it.

import type { Lsn } from "../../api/lsn.ts";
import type { GrpcBasebackup } from "./grpc.ts";
import type { PageApiTarget } from "./target.ts";

export type { GrpcBasebackup } from "./grpc.ts";
export { grpcOrigin, type PageApiTarget } from "./target.ts";

/** See grpc.ts: `GetBaseBackup` on shard 0, its chunks as a stream. */
export async function openGrpcBasebackup(opts: {
  target: PageApiTarget;
  lsn: string | Lsn;
  replica: boolean;
  /** Aborting fails the connect or the stream, whichever is under way. */
  signal?: AbortSignal;
}): Promise<GrpcBasebackup> {
  const grpc = await import("./grpc.ts");
  return grpc.openGrpcBasebackup(opts);
}

/** See grpc.ts: `LeaseLsn`, the expiry in unix ms or null when refused. */
export async function leaseLsnGrpc(opts: {
  target: PageApiTarget;
  lsn: string | Lsn;
  signal?: AbortSignal;
}): Promise<number | null> {
  const grpc = await import("./grpc.ts");
  return grpc.leaseLsnGrpc(opts);
}
