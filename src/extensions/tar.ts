// An in-memory tar reader for remote-extension archives (small: kilobytes to tens of MB), over
// the shared header parser in util/tar.ts. It only parses; deciding what is acceptable is
// archive.ts's job, so every entry type is reported as it is, never followed or interpreted.
import {
  applyMeta,
  BLOCK,
  isMetaType,
  isZeroBlock,
  MAX_META_BYTES,
  type PendingMeta,
  paddingOf,
  parseHeader,
  TarError,
} from "../util/tar.ts";

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

/** Parses a whole tar archive. Stops at the first zero block (end of archive) or at the end. */
export function readTar(buf: Uint8Array): TarEntry[] {
  const entries: TarEntry[] = [];
  let off = 0;
  let pending: PendingMeta = {};
  let pendingAny = false;
  while (off + BLOCK <= buf.length) {
    const block = buf.subarray(off, off + BLOCK);
    if (isZeroBlock(block)) break;
    const h = parseHeader(block, off);
    const meta = isMetaType(h.type);
    const size = meta ? h.size : (pending.size ?? h.size);
    const dataStart = off + BLOCK;
    if (dataStart + size > buf.length) throw new TarError("truncated tar archive");
    const data = buf.subarray(dataStart, dataStart + size);
    off = dataStart + size + paddingOf(size);

    if (meta) {
      if (h.type !== "g" && size > MAX_META_BYTES) {
        throw new TarError(`tar extended header of ${size} bytes is too large`);
      }
      applyMeta(h.type, data, pending);
      pendingAny ||= h.type !== "g";
      continue;
    }
    entries.push({
      path: pending.path ?? h.name,
      kind: KINDS[h.type] ?? "other",
      typeflag: h.type,
      mode: h.mode,
      linkname: pending.linkpath ?? h.linkname,
      data,
    });
    pending = {};
    pendingAny = false;
  }
  if (pendingAny) throw new TarError("tar archive ends after a metadata entry");
  return entries;
}
