// LFC prewarm and offload states on the wire (GET /lfc/prewarm, GET /lfc/offload): internally
// tagged on `status`, snake_case, fields in the reference's order.
import { type Static, Type as T } from "@sinclair/typebox";
import { I32, U32 } from "./spec.ts";

export const LfcPrewarmStateSchema = T.Union(
  [
    T.Object({ status: T.Literal("not_prewarmed") }),
    T.Object({ status: T.Literal("prewarming") }),
    T.Object({
      status: T.Literal("completed"),
      total: I32,
      prewarmed: I32,
      skipped: I32,
      state_download_time_ms: U32,
      uncompress_time_ms: U32,
      prewarm_time_ms: U32,
    }),
    T.Object({ status: T.Literal("failed"), error: T.String() }),
    T.Object({ status: T.Literal("skipped") }),
    T.Object({ status: T.Literal("cancelled") }),
  ],
  { $id: "LfcPrewarmState" },
);

export const LfcOffloadStateSchema = T.Union(
  [
    T.Object({ status: T.Literal("not_offloaded") }),
    T.Object({ status: T.Literal("offloading") }),
    T.Object({
      status: T.Literal("completed"),
      state_query_time_ms: U32,
      compress_time_ms: U32,
      state_upload_time_ms: U32,
    }),
    T.Object({ status: T.Literal("failed"), error: T.String() }),
    T.Object({ status: T.Literal("skipped") }),
  ],
  { $id: "LfcOffloadState" },
);

export type LfcPrewarmState = Static<typeof LfcPrewarmStateSchema>;
export type LfcOffloadState = Static<typeof LfcOffloadStateSchema>;
