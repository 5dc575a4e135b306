// Timestamp spellings of the wire format. chrono prints 0, 3, 6 or 9 fractional digits, as few
// as represent the value exactly; `start_time` ends in `Z`, `last_active` (to_rfc3339) in `+00:00`.
// Times are carried as integer microseconds since the epoch.

function fraction(micros: number): string {
  const us = ((micros % 1_000_000) + 1_000_000) % 1_000_000;
  if (us === 0) return "";
  if (us % 1000 === 0) return `.${String(us / 1000).padStart(3, "0")}`;
  return `.${String(us).padStart(6, "0")}`;
}

function base(micros: number): string {
  return new Date(Math.floor(micros / 1_000_000) * 1000).toISOString().slice(0, 19);
}

/** chrono's serde form: `2025-07-31T12:00:00.123456Z`. */
export function rfc3339Z(micros: number): string {
  return `${base(micros)}${fraction(micros)}Z`;
}

/** chrono's `to_rfc3339()` form: `2025-07-31T12:00:01.234567+00:00`. */
export function rfc3339Offset(micros: number): string {
  return `${base(micros)}${fraction(micros)}+00:00`;
}
