// Tar readers for remote-extension archives (small: kilobytes to tens of MB), over the shared
// header parser in util/tar.ts: one over bytes in memory, one over a stream with size and entry
// limits (what a download goes through). It only parses; deciding what is acceptable is
// archive.ts's job, so every entry type is reported as it is, never followed or interpreted.
import { ByteReader } from "../util/byte-reader.ts";
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
  type TarHeader,
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

/** Bounds on what one archive may hold; past either, reading stops with a TarError. */
export interface TarLimits {
  /** The archive's unpacked size (headers, data and padding up to the entry's end). */
  maxBytes: number;
  /** Entries, metadata entries included. */
  maxEntries: number;
}

/** The entry-by-entry state shared by the in-memory and the streaming reader. */
class Collector {
  readonly entries: TarEntry[] = [];
  private pending: PendingMeta = {};
  private pendingAny = false;
  private seen = 0;

  constructor(private readonly limits: TarLimits | undefined) {}

  /**
   * Parses the header block at `off`: null at the end of the archive, else what the entry's
   * data will be. The limits are checked here, before any of that data is read.
   */
  header(block: Uint8Array, off: number): { h: TarHeader; meta: boolean; size: number } | null {
    if (isZeroBlock(block)) return null;
    const h = parseHeader(block, off);
    const meta = isMetaType(h.type);
    const size = meta ? h.size : (this.pending.size ?? h.size);
    if (meta && h.type !== "g" && size > MAX_META_BYTES) {
      throw new TarError(`tar extended header of ${size} bytes is too large`);
    }
    const limits = this.limits;
    if (limits) {
      this.seen++;
      if (this.seen > limits.maxEntries) {
        throw new TarError(`archive has more than ${limits.maxEntries} entries`);
      }
      if (off + BLOCK + size > limits.maxBytes) {
        throw new TarError(
          `archive expands to more than ${limits.maxBytes} bytes (entry '${this.pending.path ?? h.name}' of ${size} bytes at byte ${off})`,
        );
      }
    }
    return { h, meta, size };
  }

  data(e: { h: TarHeader; meta: boolean }, data: Uint8Array): void {
    const { h } = e;
    if (e.meta) {
      applyMeta(h.type, data, this.pending);
      this.pendingAny ||= h.type !== "g";
      return;
    }
    this.entries.push({
      path: this.pending.path ?? h.name,
      kind: KINDS[h.type] ?? "other",
      typeflag: h.type,
      mode: h.mode,
      linkname: this.pending.linkpath ?? h.linkname,
      data,
    });
    this.pending = {};
    this.pendingAny = false;
  }

  finish(): TarEntry[] {
    if (this.pendingAny) throw new TarError("tar archive ends after a metadata entry");
    return this.entries;
  }
}

/** Parses a whole tar archive. Stops at the first zero block (end of archive) or at the end. */
export function readTar(buf: Uint8Array, limits?: TarLimits): TarEntry[] {
  const c = new Collector(limits);
  let off = 0;
  while (off + BLOCK <= buf.length) {
    const e = c.header(buf.subarray(off, off + BLOCK), off);
    if (e === null) break;
    const dataStart = off + BLOCK;
    if (dataStart + e.size > buf.length) throw new TarError("truncated tar archive");
    c.data(e, buf.subarray(dataStart, dataStart + e.size));
    off = dataStart + e.size + paddingOf(e.size);
  }
  return c.finish();
}

/** The unpacked stream failed (e.g. corrupt compressed input); `cause` says why. */
export class TarStreamError extends Error {
  override name = "TarStreamError";
}

/**
 * Parses a tar archive as it streams in, with limits: an entry whose declared size would pass
 * `maxBytes` is refused at its header, before its data is read, so a small compressed archive
 * that unpacks to gigabytes costs nothing. Reading stops at the end-of-archive block (the rest
 * of the stream is cancelled). Only the entries' data is held, never the stream as a whole.
 */
export async function readTarStream(
  stream: ReadableStream<Uint8Array>,
  limits: TarLimits,
): Promise<TarEntry[]> {
  const input = new ByteReader(stream[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>, {
    endedEarly: () => new TarError("truncated tar archive"),
    readError: (err) =>
      new TarStreamError(err instanceof Error ? err.message : String(err), { cause: err }),
  });
  const c = new Collector(limits);
  let off = 0;
  try {
    // Less than a block left ends the archive, and so does padding cut short after the last
    // entry; entry data cut short is a truncation (take throws).
    while (await input.has(BLOCK)) {
      const e = c.header(await input.take(BLOCK), off);
      if (e === null) break;
      const pad = paddingOf(e.size);
      // A copy: the entry outlives the chunk it was cut from, which may be much larger.
      c.data(e, (await input.take(e.size)).slice());
      if (pad > 0 && (await input.has(pad))) await input.skip(pad);
      off += BLOCK + e.size + pad;
    }
    return c.finish();
  } finally {
    await input.close();
  }
}
