// An in-memory tar reader for remote-extension archives (small: kilobytes to tens of MB). It only
// parses; deciding what is acceptable is archive.ts's job, so every entry type is reported as it
// is, never followed or interpreted. ustar, GNU long names/links and pax path/size records are
// understood because common tar writers emit them for long paths.

/** A malformed archive. */
export class TarFormatError extends Error {
  override name = "TarFormatError";
}

export type TarEntryKind =
  | "file"
  | "directory"
  | "hardlink"
  | "symlink"
  | "chardev"
  | "blockdev"
  | "fifo"
  | "other";

export interface TarEntry {
  /** The path as stored (after GNU/pax overrides), not normalised. */
  path: string;
  kind: TarEntryKind;
  /** The raw type flag, for error messages about "other" entries. */
  typeflag: string;
  mode: number;
  linkname: string;
  data: Uint8Array;
}

const BLOCK = 512;
// GNU long names and pax headers are tiny; a huge one is a corrupt or hostile archive.
const MAX_META_BYTES = 1 << 20;

const KINDS: Record<string, TarEntryKind> = {
  "0": "file",
  "\0": "file",
  "5": "directory",
  "1": "hardlink",
  "2": "symlink",
  "3": "chardev",
  "4": "blockdev",
  "6": "fifo",
};

const utf8 = new TextDecoder("utf-8", { fatal: true });

function cString(b: Uint8Array): string {
  const nul = b.indexOf(0);
  try {
    return utf8.decode(nul === -1 ? b : b.subarray(0, nul));
  } catch {
    throw new TarFormatError("tar header field is not valid UTF-8");
  }
}

function numeric(b: Uint8Array, what: string): number {
  if (b[0]! & 0x80) {
    // GNU base-256: big-endian, the top bit of the first byte is the marker.
    let n = b[0]! & 0x7f;
    for (let i = 1; i < b.length; i++) {
      n = n * 256 + b[i]!;
      if (n > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`tar ${what} is too large`);
    }
    return n;
  }
  const s = String.fromCharCode(...b)
    .replace(/\0.*$/s, "")
    .trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`invalid octal ${what} '${s}' in tar header`);
  return Number.parseInt(s, 8);
}

function checksumOk(h: Uint8Array): boolean {
  const stored = numeric(h.subarray(148, 156), "checksum");
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === stored;
}

function isZeroBlock(h: Uint8Array): boolean {
  for (let i = 0; i < h.length; i++) if (h[i] !== 0) return false;
  return true;
}

/** pax extended header records: "<len> <key>=<value>\n". */
function paxRecords(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp === -1) throw new TarFormatError("malformed pax header");
    const len = Number(String.fromCharCode(...data.subarray(off, sp)));
    if (!Number.isInteger(len) || len <= 0 || off + len > data.length) {
      throw new TarFormatError("malformed pax header record length");
    }
    let record: string;
    try {
      record = utf8.decode(data.subarray(sp + 1, off + len - 1));
    } catch {
      throw new TarFormatError("pax header record is not valid UTF-8");
    }
    const eq = record.indexOf("=");
    if (eq === -1) throw new TarFormatError("malformed pax header record");
    out.set(record.slice(0, eq), record.slice(eq + 1));
    off += len;
  }
  return out;
}

/** Parses a whole tar archive. Stops at the first zero block (end of archive) or at the end. */
export function readTar(buf: Uint8Array): TarEntry[] {
  const entries: TarEntry[] = [];
  let off = 0;
  let longName: string | null = null;
  let longLink: string | null = null;
  let pax: Map<string, string> | null = null;
  while (off + BLOCK <= buf.length) {
    const h = buf.subarray(off, off + BLOCK);
    if (isZeroBlock(h)) break;
    if (!checksumOk(h)) throw new TarFormatError(`bad tar header checksum at offset ${off}`);
    const typeflag = String.fromCharCode(h[156]!);
    let size = numeric(h.subarray(124, 136), "size");
    const paxSize = pax?.get("size");
    if (paxSize !== undefined && typeflag !== "x" && typeflag !== "g") {
      if (!/^\d+$/.test(paxSize)) throw new TarFormatError("malformed pax size");
      size = Number(paxSize);
    }
    const dataStart = off + BLOCK;
    if (dataStart + size > buf.length) throw new TarFormatError("truncated tar archive");
    const data = buf.subarray(dataStart, dataStart + size);
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    if (typeflag === "L" || typeflag === "K" || typeflag === "x" || typeflag === "g") {
      if (size > MAX_META_BYTES) throw new TarFormatError("tar metadata entry is too large");
      if (typeflag === "L") longName = cString(data);
      else if (typeflag === "K") longLink = cString(data);
      else if (typeflag === "x") pax = paxRecords(data);
      // 'g' (global pax) carries nothing a path decision depends on: skipped.
      continue;
    }

    let path = cString(h.subarray(0, 100));
    // POSIX ustar ("ustar\0") has a prefix field; old GNU ("ustar  ") uses those bytes otherwise.
    const magic = String.fromCharCode(...h.subarray(257, 263));
    if (magic === "ustar\0") {
      const prefix = cString(h.subarray(345, 500));
      if (prefix) path = `${prefix}/${path}`;
    }
    let linkname = cString(h.subarray(157, 257));
    if (longName !== null) path = longName;
    if (longLink !== null) linkname = longLink;
    if (pax?.has("path")) path = pax.get("path")!;
    if (pax?.has("linkpath")) linkname = pax.get("linkpath")!;
    longName = longLink = null;
    pax = null;

    entries.push({
      path,
      kind: KINDS[typeflag] ?? "other",
      typeflag,
      mode: numeric(h.subarray(100, 108), "mode"),
      linkname,
      data,
    });
  }
  if (longName !== null || longLink !== null || pax !== null) {
    throw new TarFormatError("tar archive ends after a metadata entry");
  }
  return entries;
}
