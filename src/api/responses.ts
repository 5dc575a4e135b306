// Response bodies of the HTTP API, in the reference's field order (serde serialises in
// declaration order, and clients diff the JSON).
import { type Static, Type as T } from "@sinclair/typebox";
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

const U64 = T.Integer({ minimum: 0 });

/** `/metrics.json`: every field always present, integers, 0 until measured. */
export const ComputeMetrics = T.Object(
  {
    wait_for_spec_ms: U64,
    sync_sk_check_ms: U64,
    sync_safekeepers_ms: U64,
    pageserver_connect_micros: U64,
    basebackup_ms: U64,
    basebackup_bytes: U64,
    start_postgres_ms: U64,
    config_ms: U64,
    total_startup_ms: U64,
    load_ext_ms: U64,
    num_ext_downloaded: U64,
    largest_ext_size: U64,
    total_ext_download_size: U64,
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
