// The tar format, parsed once for both readers: the streaming basebackup extractor
// (storage/untar.ts) and the in-memory reader of remote-extension archives (extensions/tar.ts).
// Headers are 512-byte blocks; ustar, old-GNU and pax archives are understood, with GNU long
// names/links ('L'/'K') and pax 'path', 'linkpath' and 'size' records applied to the next entry.
// Deciding what an entry may do (its type, where it lands) is the caller's job.

/** A malformed or unsupported archive. */
export class TarError extends Error {
  override name = "TarError";
}

export const BLOCK = 512;
/** GNU long names and pax headers are small; a larger one is a corrupt or hostile archive. */
export const MAX_META_BYTES = 1 << 20;

export interface TarHeader {
  /** The name field, with the POSIX ustar prefix applied. */
  name: string;
  linkname: string;
  mode: number;
  size: number;
  /** The raw type flag ('0', '\0', '5', 'L', 'x', …). */
  type: string;
}

/** Overrides carried by 'L', 'K' and 'x' entries for the entry that follows them. */
export interface PendingMeta {
  path?: string;
  linkpath?: string;
  size?: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decode(b: Uint8Array, what: string): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new TarError(`${what} is not valid UTF-8`);
  }
}

function cstring(h: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && h[end] !== 0) end++;
  return decode(h.subarray(off, end), "tar header field");
}

/** A numeric header field: octal ASCII (space/NUL padded) or GNU base-256 (high bit set). */
function numeric(h: Uint8Array, off: number, len: number, what: string): number {
  const first = h[off] ?? 0;
  if (first & 0x80) {
    if (first & 0x40) throw new TarError(`negative ${what} in tar header`);
    let v = first & 0x3f;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + (h[i] ?? 0);
    if (!Number.isSafeInteger(v)) throw new TarError(`${what} too large in tar header`);
    return v;
  }
  let v = 0;
  let i = off;
  const end = off + len;
  while (i < end && (h[i] === 0x20 || h[i] === 0)) i++; // leading padding
  for (; i < end; i++) {
    const c = h[i] ?? 0;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) throw new TarError(`invalid octal ${what} in tar header`);
    v = v * 8 + (c - 0x30);
  }
  return v;
}

export function isZeroBlock(h: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

/** True for the entries that only carry metadata for the next one. */
export function isMetaType(type: string): boolean {
  return type === "L" || type === "K" || type === "x" || type === "g";
}

/** Parses one header block found at byte `offset` of the archive; checks its checksum. */
export function parseHeader(h: Uint8Array, offset: number): TarHeader {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
  const stored = numeric(h, 148, 8, "checksum");
  if (stored !== sum) {
    throw new TarError(
      `tar header checksum mismatch at byte ${offset} (stored ${stored}, computed ${sum})`,
    );
  }
  let name = cstring(h, 0, 100);
  // POSIX ustar ("ustar\0") has a prefix field; old GNU ("ustar  ") uses those bytes otherwise.
  const posix =
    h[257] === 0x75 &&
    h[258] === 0x73 &&
    h[259] === 0x74 &&
    h[260] === 0x61 &&
    h[261] === 0x72 &&
    h[262] === 0;
  if (posix) {
    const prefix = cstring(h, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  return {
    name,
    linkname: cstring(h, 157, 100),
    mode: numeric(h, 100, 8, "mode"),
    size: numeric(h, 124, 12, "size"),
    type: String.fromCharCode(h[156] ?? 0),
  };
}

/**
 * Applies a metadata entry's data ('L', 'K' or 'x'; 'g' carries nothing used) to `into`.
 * pax records are "<len> <key>=<value>\n"; a NUL-padded tail is tolerated.
 */
export function applyMeta(type: string, data: Uint8Array, into: PendingMeta): void {
  if (type === "L" || type === "K") {
    let end = data.length;
    while (end > 0 && data[end - 1] === 0) end--;
    const text = decode(data.subarray(0, end), "GNU long name");
    if (type === "L") into.path = text;
    else into.linkpath = text;
    return;
  }
  if (type !== "x") return;
  let off = 0;
  while (off < data.length) {
    let sp = off;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const len = Number(decode(data.subarray(off, sp), "pax header"));
    if (!Number.isInteger(len) || len <= sp - off || off + len > data.length) {
      if (data.subarray(off).every((b) => b === 0)) return;
      throw new TarError("malformed pax extended header");
    }
    const record = decode(data.subarray(sp + 1, off + len - 1), "pax header record");
    const eq = record.indexOf("=");
    if (eq < 0) throw new TarError("malformed pax extended header record");
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === "path") into.path = value;
    else if (key === "linkpath") into.linkpath = value;
    else if (key === "size") {
      const n = Number(value);
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
        throw new TarError(`invalid pax size ${JSON.stringify(value)}`);
      }
      into.size = n;
    }
    off += len;
  }
}

/** Bytes of padding after `size` bytes of entry data. */
export function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
