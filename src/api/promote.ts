// The /promote wire types (libs/compute_api/src/responses.rs): the request body and the state the
// route answers with, internally tagged on `status` like the LFC states.
import { type Static, Type as T } from "@sinclair/typebox";
import { parseLsn } from "./lsn.ts";
import { ComputeSpec, LsnString, U32, U64 } from "./spec.ts";

/** The reference's Lsn deserializer takes "X/Y" or a JSON integer. */
export const WalFlushLsn = T.Union([LsnString, U64], {
  $id: "WalFlushLsn",
  description: 'an LSN: "X/Y" or an integer',
});

/** The POST /promote body: the old primary's spec and the LSN it last flushed. */
export const PromoteConfig = T.Object(
  {
    spec: ComputeSpec,
    wal_flush_lsn: WalFlushLsn,
  },
  { $id: "PromoteConfig" },
);
export type PromoteConfig = Static<typeof PromoteConfig>;

export const PromoteState = T.Union(
  [
    // Never answered by the route; kept because it is part of the reference's type.
    T.Object({ status: T.Literal("not_promoted") }),
    T.Object({
      status: T.Literal("completed"),
      lsn_wait_time_ms: U32,
      pg_promote_time_ms: U32,
      reconfigure_time_ms: U32,
    }),
    T.Object({ status: T.Literal("failed"), error: T.String() }),
  ],
  { $id: "PromoteState" },
);
export type PromoteState = Static<typeof PromoteState>;

/** `wal_flush_lsn` as a 64-bit position, whichever form it came in. */
export function walFlushLsn(cfg: Pick<PromoteConfig, "wal_flush_lsn">): bigint {
  const v = cfg.wal_flush_lsn;
  return typeof v === "number" ? BigInt(v) : parseLsn(v);
}
