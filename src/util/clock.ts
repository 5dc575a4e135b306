// Time as compute_ctl measures it: wall-clock microseconds (Date has only ms) and elapsed
// milliseconds, truncated as the reference's `as_millis()` (capped at u32 where it reports u32).

/** Microseconds since the epoch. */
export function nowMicros(): number {
  return Math.floor((TIME_ORIGIN + performance.now()) * 1000);
}

// Read once: the getter costs as much as the rest of a log line's timestamp.
const TIME_ORIGIN = performance.timeOrigin;

/** Whole milliseconds since `t0` (a `performance.now()` value). */
export function elapsedMs(t0: number): number {
  return Math.min(Math.floor(performance.now() - t0), 0xffffffff);
}
