// Postgres WAL positions in the wire form "HI/LO". An LSN is carried as a bigint (the full u64;
// a JS number cannot hold it exactly) and printed the reference's way: upper-case hex halves
// with no zero padding, e.g. "0/169AD58".

/** A WAL position: an unsigned 64-bit integer. */
export type Lsn = bigint;

export const MAX_LSN: Lsn = (1n << 64n) - 1n;

// The reference trims with Rust's `str::trim` (Unicode White_Space), which differs from JS `\s`
// (no U+FEFF, but U+0085), so the class is spelled out.
const WS =
  "[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
// A half is a u32 parsed with `from_str_radix(_, 16)`: optional '+', any leading zeros, at most
// 8 significant digits (so the value always fits in 32 bits).
const HALF = "\\+?0*[0-9A-Fa-f]{1,8}";

/** The JSON-Schema pattern for an LSN string; exactly the strings `parseLsn` accepts. */
export const LSN_PATTERN = `^${WS}*${HALF}/${HALF}${WS}*$`;

const LSN_RE = new RegExp(LSN_PATTERN);
const TRIM_RE = new RegExp(`^${WS}+|${WS}+$`, "g");

/** Parses "HI/LO" (surrounding whitespace allowed); null when it is not an LSN. */
export function tryParseLsn(text: string): Lsn | null {
  if (!LSN_RE.test(text)) return null;
  const [hi = "", lo = ""] = text.replace(TRIM_RE, "").split("/");
  return (BigInt(`0x${hi.replace("+", "")}`) << 32n) | BigInt(`0x${lo.replace("+", "")}`);
}

/** Parses "HI/LO"; throws `invalid LSN "<text>"` otherwise. */
export function parseLsn(text: string): Lsn {
  const lsn = tryParseLsn(text);
  if (lsn === null) throw new Error(`invalid LSN ${JSON.stringify(text)}`);
  return lsn;
}

/** Formats an LSN as "HI/LO" in upper-case hex. */
export function formatLsn(lsn: Lsn): string {
  if (lsn < 0n || lsn > MAX_LSN) throw new RangeError(`LSN out of range: ${lsn}`);
  const hi = (lsn >> 32n).toString(16).toUpperCase();
  const lo = (lsn & 0xffffffffn).toString(16).toUpperCase();
  return `${hi}/${lo}`;
}

/** The canonical spelling of an LSN string (trimmed, upper case, no padding). */
export function normalizeLsn(text: string): string {
  return formatLsn(parseLsn(text));
}
