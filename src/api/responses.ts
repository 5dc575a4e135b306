// Response bodies of the HTTP API, in the reference's field order (serde serialises in
// declaration order, and clients diff the JSON).
import { type Static, Type as T } from "@sinclair/typebox";
import { SentU64 } from "./spec.ts";
import { COMPUTE_STATUSES } from "./status.ts";

export const ComputeStatusSchema = T.Union(
  COMPUTE_STATUSES.map((s) => T.Literal(s)),
  { $id: "ComputeStatus" },
);

const Nullable = <S extends ReturnType<typeof T.String>>(s: S) => T.Union([s, T.Null()]);

export const ComputeStatusResponse = T.Object(
  {
    start_time: T.String({ description: "RFC 3339, `Z` suffix" }),
    tenant: Nullable(T.String()),
    timeline: Nullable(T.String()),
    status: ComputeStatusSchema,
    last_active: Nullable(T.String({ description: "RFC 3339, `+00:00` suffix" })),
    error: Nullable(T.String()),
  },
  { $id: "ComputeStatusResponse" },
);
export type ComputeStatusResponse = Static<typeof ComputeStatusResponse>;

/** `/metrics.json`: every field always present, integers, 0 until measured. */
export const ComputeMetrics = T.Object(
  {
    wait_for_spec_ms: SentU64,
    sync_sk_check_ms: SentU64,
    sync_safekeepers_ms: SentU64,
    pageserver_connect_micros: SentU64,
    basebackup_ms: SentU64,
    basebackup_bytes: SentU64,
    start_postgres_ms: SentU64,
    config_ms: SentU64,
    total_startup_ms: SentU64,
    load_ext_ms: SentU64,
    num_ext_downloaded: SentU64,
    largest_ext_size: SentU64,
    total_ext_download_size: SentU64,
  },
  { $id: "ComputeMetrics" },
);
export type ComputeMetrics = Static<typeof ComputeMetrics>;

export function emptyComputeMetrics(): ComputeMetrics {
  return {
    wait_for_spec_ms: 0,
    sync_sk_check_ms: 0,
    sync_safekeepers_ms: 0,
    pageserver_connect_micros: 0,
    basebackup_ms: 0,
    basebackup_bytes: 0,
    start_postgres_ms: 0,
    config_ms: 0,
    total_startup_ms: 0,
    load_ext_ms: 0,
    num_ext_downloaded: 0,
    largest_ext_size: 0,
    total_ext_download_size: 0,
  };
}

export const TerminateResponse = T.Object(
  { lsn: T.Union([T.String({ description: "X/Y" }), T.Null()]) },
  { $id: "TerminateResponse" },
);
export type TerminateResponse = Static<typeof TerminateResponse>;

export const GenericApiError = T.Object({ error: T.String() }, { $id: "GenericAPIError" });
export type GenericApiError = Static<typeof GenericApiError>;
