// The LFC prewarm and offload states exactly as the reference serializes them (http.md §2):
// internally tagged on `status`, snake_case, fields in the reference's declaration order.

export type LfcPrewarmState =
  | { status: "not_prewarmed" }
  | { status: "prewarming" }
  | {
      status: "completed";
      total: number;
      prewarmed: number;
      skipped: number;
      state_download_time_ms: number;
      uncompress_time_ms: number;
      prewarm_time_ms: number;
    }
  | { status: "failed"; error: string }
  | { status: "skipped" }
  | { status: "cancelled" };

export type LfcOffloadState =
  | { status: "not_offloaded" }
  | { status: "offloading" }
  | {
      status: "completed";
      state_query_time_ms: number;
      compress_time_ms: number;
      state_upload_time_ms: number;
    }
  | { status: "failed"; error: string }
  | { status: "skipped" };

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

/** u32 milliseconds, truncated like Rust's `as_millis() as u32`. */
export function elapsedMs(since: number): number {
  return Math.min(Math.floor(performance.now() - since), 0xffffffff);
}
