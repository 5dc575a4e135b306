// The pageserver's gRPC page service, as the rest of compute_ctl calls it. The client itself
// (grpc.ts: node:http2, Connect, protobuf; ~20 MiB of resident memory once loaded) is imported on
// the first call, so a compute that gets its basebackup over libpq never loads it.

import type * as Grpc from "./grpc.ts";

export type { GrpcBasebackup } from "./grpc.ts";
export { grpcOrigin, type PageApiTarget } from "./target.ts";

/** See grpc.ts: `GetBaseBackup` on shard 0, its chunks as a stream. */
export async function openGrpcBasebackup(
  opts: Parameters<typeof Grpc.openGrpcBasebackup>[0],
): Promise<Grpc.GrpcBasebackup> {
  const grpc = await import("./grpc.ts");
  return grpc.openGrpcBasebackup(opts);
}

/** See grpc.ts: `LeaseLsn`, the expiry in unix ms or null when refused. */
export async function leaseLsnGrpc(
  opts: Parameters<typeof Grpc.leaseLsnGrpc>[0],
): Promise<number | null> {
  const grpc = await import("./grpc.ts");
  return grpc.leaseLsnGrpc(opts);
}
