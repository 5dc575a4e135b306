// The LFC prewarm and offload states exactly as the reference serializes them:
// internally tagged on `status`, snake_case, fields in the reference's declaration order.

import type { LfcOffloadState, LfcPrewarmState } from "../api/lfc.ts";

export type { LfcOffloadState, LfcPrewarmState };

export type LfcPrewarmStatus = LfcPrewarmState["status"];
export type LfcOffloadStatus = LfcOffloadState["status"];

/**
 * THE RULE (commit 53a05e8ccb upstream): may the PERIODIC offloader upload now? Only after a
 * prewarm that completed or found nothing (skipped), or when none ran. Why: an offload while
 * prewarming, or after a failed or cancelled prewarm, would overwrite the good saved state with
 * an incomplete one, and the next restart would prewarm from that. A manual POST /lfc/offload is
 * not gated, as in the reference.
 */
export function periodicOffloadAllowed(prewarm: LfcPrewarmState): boolean {
  return (
    prewarm.status === "completed" ||
    prewarm.status === "not_prewarmed" ||
    prewarm.status === "skipped"
  );
}

/** A prewarm has settled when it is in one of these (the python client's `prewarm_lfc_wait`). */
export function prewarmSettled(s: LfcPrewarmState): boolean {
  return s.status !== "prewarming";
}
