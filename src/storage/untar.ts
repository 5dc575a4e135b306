// Streaming gunzip + tar extraction of a pageserver basebackup into PGDATA, in bounded memory:
// compressed chunks are pulled from the source only as fast as the decompressed bytes reach the
// disk, and file data goes to disk chunk by chunk (each write awaited), never whole.
//
// The tar reader accepts what the pageserver emits (GNU headers, regular files and directories,
// no end-of-archive blocks) plus ustar, GNU long names and pax path/size records, and reads past
// zero blocks until EOF (the reference's `ignore_zeros`), so an error the transport reports after
// the archive still fails the extraction. Anything else is refused loudly.
import {
  closeSync,
  constants,
  fchmodSync,
  lstatSync,
  openSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { chmod, lstat, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { withPath } from "../util/fs-write.ts";
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

export { TarError };

export interface ExtractResult {
  /** Gzip bytes read from the source (the reference's `basebackup_bytes`). */
  compressedBytes: number;
  /** Regular files written. */
  files: number;
  /** Directory entries in the archive. */
  dirs: number;
  /** Decompressed tar bytes. */
  tarBytes: number;
}

// Decompressed bytes buffered ahead of the disk writes, so gunzip overlaps with I/O.
const READ_AHEAD_BYTES = 1 << 20;
// Compressed bytes handed to the inflater at once: a highly compressible chunk expands ~1000×,
// and smaller steps keep the transient buffers (and so the peak RSS) small.
const INFLATE_INPUT_BYTES = 64 << 10;
// Every inflated chunk is a fresh buffer, freed only when the collector runs; in a process whose
// heap is already large it runs late and they pile up to ~100 MB. A collection every 64 MiB keeps
// the peak flat for a few ms each (measured: peak growth ~95 -> ~50 MiB on a 2 GiB archive).
const GC_EVERY_BYTES = 64 << 20;

const TYPE_NAMES: Record<string, string> = {
  "1": "hard link",
  "2": "symbolic link",
  "3": "character device",
  "4": "block device",
  "6": "FIFO",
  "7": "contiguous file",
  D: "GNU dump directory",
  M: "GNU multi-volume continuation",
  N: "GNU old long name",
  S: "GNU sparse file",
  V: "GNU volume label",
};

type Entry =
  | { kind: "file"; name: string; fd: number; mode: number; pos: number }
  | { kind: "meta"; type: string; buf: Uint8Array; fill: number }
  | { kind: "skip" };

/** Relative path components of an archive member, or a TarError when it could escape. */
function safeComponents(name: string): string[] {
  if (name.startsWith("/")) throw new TarError(`refusing absolute path ${JSON.stringify(name)}`);
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new TarError(`refusing path with a '..' component ${JSON.stringify(name)}`);
  }
  return parts;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

// Never setuid/setgid from an archive; the sticky bit is harmless.
const modeOf = (m: number) => m & 0o1777;
// Read once: files are created with their final mode and chmod'ed only when the umask interferes.
const UMASK = process.umask();

class Extractor {
  files = 0;
  dirs = 0;
  tarBytes = 0;
  private header = new Uint8Array(BLOCK);
  private headerFill = 0;
  private remaining = 0; // data bytes left in the current entry
  private entryPad = 0; // padding after the current entry's data
  private pad = 0; // padding bytes left to skip now
  private entry: Entry | null = null;
  private pending: PendingMeta = {};
  private knownDirs = new Set<string>([""]);
  private dirModes: [string, number][] = [];

  constructor(private readonly dest: string) {}

  async push(chunk: Uint8Array): Promise<void> {
    this.tarBytes += chunk.length;
    let off = 0;
    const len = chunk.length;
    while (off < len) {
      if (this.pad > 0) {
        const n = Math.min(this.pad, len - off);
        this.pad -= n;
        off += n;
      } else if (this.entry) {
        const n = Math.min(this.remaining, len - off);
        await this.entryData(chunk, off, n);
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) await this.endEntry();
      } else {
        let block: Uint8Array;
        if (this.headerFill === 0 && len - off >= BLOCK) {
          block = chunk.subarray(off, off + BLOCK);
          off += BLOCK;
        } else {
          const n = Math.min(BLOCK - this.headerFill, len - off);
          this.header.set(chunk.subarray(off, off + n), this.headerFill);
          this.headerFill += n;
          off += n;
          if (this.headerFill < BLOCK) continue;
          this.headerFill = 0;
          block = this.header;
        }
        await this.onHeader(block, this.tarBytes - len + off - BLOCK);
      }
    }
  }

  /** End of the decompressed stream: it must fall on an entry boundary. */
  async finish(): Promise<void> {
    if (this.entry || this.pad > 0 || this.headerFill > 0) {
      throw new TarError("unexpected end of tar archive (truncated entry)");
    }
    if (this.pending.path !== undefined || this.pending.size !== undefined) {
      throw new TarError("unexpected end of tar archive after an extended header");
    }
    // Directory modes last, deepest first, so a read-only directory cannot block its children.
    for (let i = this.dirModes.length - 1; i >= 0; i--) {
      const [path, mode] = this.dirModes[i] as [string, number];
      await chmod(path, mode);
    }
  }

  /** Releases an open file after a failure; what was written stays (as in the reference). */
  async abort(): Promise<void> {
    const e = this.entry;
    this.entry = null;
    if (e?.kind === "file") {
      try {
        closeSync(e.fd);
      } catch {
        // already failing; the first error is the one reported
      }
    }
  }

  private async onHeader(block: Uint8Array, offset: number): Promise<void> {
    if (isZeroBlock(block)) return; // end-of-archive marker: keep reading (ignore_zeros)
    const h = parseHeader(block, offset);
    const meta = this.pending;
    const size = meta.size ?? h.size;
    const name = meta.path ?? h.name;
    const padding = paddingOf(size);
    const isMeta = isMetaType(h.type);
    if (!isMeta) this.pending = {};

    if (isMeta) {
      if (h.type === "g") {
        this.entry = { kind: "skip" }; // global pax defaults: nothing we use
      } else {
        if (h.size > MAX_META_BYTES) {
          throw new TarError(`tar extended header of ${h.size} bytes is too large`);
        }
        this.entry = { kind: "meta", type: h.type, buf: new Uint8Array(h.size), fill: 0 };
      }
      this.remaining = h.size;
      this.entryPad = paddingOf(h.size);
    } else if (h.type === "5" || ((h.type === "0" || h.type === "\0") && name.endsWith("/"))) {
      await this.makeDir(name, h.mode);
      this.entry = size > 0 ? { kind: "skip" } : null;
      this.remaining = size;
      this.entryPad = padding;
    } else if (h.type === "0" || h.type === "\0") {
      const mode = modeOf(h.mode);
      const fd = await this.openFile(name, mode);
      this.entry = { kind: "file", name, fd, mode, pos: 0 };
      this.remaining = size;
      this.entryPad = padding;
    } else {
      const what = TYPE_NAMES[h.type] ?? `type ${JSON.stringify(h.type)}`;
      throw new TarError(
        `unsupported tar entry ${JSON.stringify(name)} (${what}): a basebackup holds only ` +
          "regular files and directories",
      );
    }
    if (this.entry && this.remaining === 0) await this.endEntry();
  }

  private async entryData(chunk: Uint8Array, off: number, n: number): Promise<void> {
    const e = this.entry;
    if (e?.kind === "file") {
      let done = 0;
      while (done < n) {
        let bytesWritten: number;
        try {
          bytesWritten = writeSync(e.fd, chunk, off + done, n - done, e.pos);
        } catch (err) {
          throw withPath(err, join(this.dest, ...safeComponents(e.name)));
        }
        if (bytesWritten <= 0) throw new Error(`short write to ${e.name}`);
        done += bytesWritten;
        e.pos += bytesWritten;
      }
    } else if (e?.kind === "meta") {
      e.buf.set(chunk.subarray(off, off + n), e.fill);
      e.fill += n;
    }
  }

  private async endEntry(): Promise<void> {
    const e = this.entry;
    this.entry = null;
    this.pad = this.entryPad;
    if (e?.kind === "file") {
      try {
        if ((e.mode & ~UMASK) !== e.mode) fchmodSync(e.fd, e.mode);
      } finally {
        closeSync(e.fd);
      }
      this.files++;
    } else if (e?.kind === "meta") {
      applyMeta(e.type, e.buf, this.pending);
    }
  }

  /**
   * Makes sure every directory above `parts[0..n)` exists as a real directory inside dest:
   * created when missing, refused when it is a symlink or a file (a path through a symlink could
   * land outside PGDATA). Checked once per directory per extraction.
   */
  private async ensureDirs(name: string, parts: string[], n: number): Promise<void> {
    for (let i = 1; i <= n; i++) {
      const rel = parts.slice(0, i).join("/");
      if (this.knownDirs.has(rel)) continue;
      const abs = join(this.dest, rel);
      try {
        const st = await lstat(abs);
        if (!st.isDirectory()) {
          const what = st.isSymbolicLink() ? "a symbolic link" : "not a directory";
          throw new TarError(
            `refusing to extract ${JSON.stringify(name)}: ${JSON.stringify(rel)} is ${what}`,
          );
        }
      } catch (err) {
        if (errno(err) !== "ENOENT") throw err;
        try {
          await mkdir(abs, 0o700);
        } catch (e2) {
          if (errno(e2) !== "EEXIST") throw e2;
          continue; // re-checked on the next entry that needs it
        }
      }
      this.knownDirs.add(rel);
    }
  }

  private async makeDir(name: string, mode: number): Promise<void> {
    const parts = safeComponents(name);
    if (parts.length === 0) return; // "./": dest itself, whose mode the caller owns
    await this.ensureDirs(name, parts, parts.length);
    this.dirModes.push([join(this.dest, ...parts), modeOf(mode)]);
    this.dirs++;
  }

  /**
   * File entries use synchronous calls on a descriptor: a basebackup is ~1,000 mostly small
   * files, and four thread-pool round trips each cost more than the writes themselves (each
   * write is one decompressed chunk into the page cache, so the event loop is not held up).
   */
  private async openFile(name: string, mode: number): Promise<number> {
    const parts = safeComponents(name);
    if (parts.length === 0) throw new TarError(`tar entry ${JSON.stringify(name)} has no name`);
    await this.ensureDirs(name, parts, parts.length - 1);
    const abs = join(this.dest, ...parts);
    // O_EXCL never follows a symlink at the last component; an existing entry (a previous
    // attempt's partial file, maybe read-only) is replaced, not written through.
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    try {
      return openSync(abs, flags, mode);
    } catch (err) {
      if (errno(err) !== "EEXIST") throw err;
    }
    const st = lstatSync(abs);
    if (st.isDirectory()) {
      throw new TarError(`cannot extract file ${JSON.stringify(name)}: a directory is in the way`);
    }
    unlinkSync(abs);
    return openSync(abs, flags, mode);
  }
}

/** A bounded queue between the decompressor and the writer, so both make progress at once. */
async function* readAhead(
  reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> },
  limit: number,
): AsyncGenerator<Uint8Array> {
  const queue: Uint8Array[] = [];
  const s = {
    queued: 0,
    done: false,
    stopped: false,
    failure: null as { err: unknown } | null,
    wakeConsumer: null as (() => void) | null,
    wakeProducer: null as (() => void) | null,
  };
  const producer = (async () => {
    try {
      while (!s.stopped) {
        if (s.queued > 0 && s.queued >= limit) {
          await new Promise<void>((r) => {
            s.wakeProducer = r;
          });
          continue;
        }
        const r = await reader.read();
        if (r.done || !r.value) break;
        queue.push(r.value);
        s.queued += r.value.length;
        s.wakeConsumer?.();
      }
    } catch (err) {
      s.failure = { err };
    }
    s.done = true;
    s.wakeConsumer?.();
  })();
  try {
    for (;;) {
      const next = queue.shift();
      if (next) {
        s.queued -= next.length;
        s.wakeProducer?.();
        s.wakeProducer = null;
        yield next;
        continue;
      }
      if (s.failure) throw s.failure.err;
      if (s.done) return;
      await new Promise<void>((r) => {
        s.wakeConsumer = r;
      });
      s.wakeConsumer = null;
    }
  } finally {
    s.stopped = true;
    s.wakeProducer?.();
    await producer;
  }
}

/** A pull-driven stream over an async iterator: nothing is read before it is asked for. */
function toStream(it: AsyncIterator<Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const r = await it.next();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      async cancel(reason) {
        await it.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Streams a gzip-compressed tar from `source` into `destDir` (created if missing; existing files
 * are replaced). Rejects on a truncated or corrupt gzip stream, a malformed or unsafe archive,
 * or an error thrown by `source` (e.g. an ErrorResponse after the data), which is rethrown as is.
 */
export async function extractTarGz(
  source: AsyncIterable<Uint8Array>,
  destDir: string,
  opts: { onCompressedBytes?: (n: number) => void } = {},
): Promise<ExtractResult> {
  let compressedBytes = 0;
  let sourceFailure: { err: unknown } | null = null;
  let abandoned = false;
  async function* counted(): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of source) {
        if (abandoned) break; // empty chunks never reach a yield where return() could land
        compressedBytes += chunk.length;
        opts.onCompressedBytes?.(chunk.length);
        for (let i = 0; i < chunk.length; i += INFLATE_INPUT_BYTES) {
          yield chunk.subarray(i, i + INFLATE_INPUT_BYTES);
        }
      }
    } catch (err) {
      sourceFailure = { err };
      throw err;
    }
  }

  await mkdir(destDir, { recursive: true });
  const ex = new Extractor(destDir);
  // The DOM typings want ArrayBuffer-backed chunks; any Uint8Array works at runtime.
  const gunzip = new DecompressionStream("gzip") as unknown as TransformStream<
    Uint8Array,
    Uint8Array
  >;
  const input = counted();
  const reader = toStream(input).pipeThrough(gunzip).getReader();
  const chunks = readAhead(reader, READ_AHEAD_BYTES);
  let collectedAt = 0;
  try {
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await chunks.next();
      } catch (err) {
        if (sourceFailure) throw (sourceFailure as { err: unknown }).err;
        throw new Error("gzip decompression failed", { cause: err });
      }
      if (r.done) break;
      await ex.push(r.value);
      if (ex.tarBytes - collectedAt >= GC_EVERY_BYTES) {
        collectedAt = ex.tarBytes;
        Bun.gc(true);
      }
    }
    await ex.finish();
  } catch (err) {
    await ex.abort();
    // Cancel first: it ends a read the read-ahead may be parked on, then the queue can stop.
    await reader.cancel(err).catch(() => undefined);
    await chunks.return(undefined).catch(() => undefined);
    // Release the source (it may be parked on a network read until its owner closes it, so
    // this is not awaited).
    abandoned = true;
    input.return(undefined).catch(() => undefined);
    throw err;
  }
  return { compressedBytes, files: ex.files, dirs: ex.dirs, tarBytes: ex.tarBytes };
}
