// Reading `neon.get_local_cache_state()` in binary. postgres.js receives query results in text
// format only, which turns a bytea into hex text of twice its size, encoded by the server and
// buffered twice by the client (seconds and about 5x the state in memory for a large state). A
// binary COPY of the state in 1 MiB rows carries the raw bytes, streamed into a compressor.
import type { TransformOptions } from "node:stream";
import type { ZstdOptions } from "node:zlib";
import type { Sql } from "postgres";
import { ByteReader } from "../util/byte-reader.ts";

const SIGNATURE = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");

/** Bytes of the state per row of the chunked query: one CopyData message each. */
const STATE_CHUNK_BYTES = 1 << 20;

/**
 * The state in rows of (1-based offset, up to 1 MiB of bytes), from ONE call of the function (the
 * OFFSET 0 fence keeps the planner from repeating it per row). A NULL state is one row whose
 * chunk is NULL; an empty one is one row with an empty chunk. Postgres sends each row as its own
 * CopyData message, so no message carries the whole state, and the client never has to hold it.
 */
export const CHUNKED_STATE_QUERY =
  "COPY (SELECT o, CASE WHEN s IS NULL THEN NULL " +
  `ELSE pg_catalog.substring(s, o, ${STATE_CHUNK_BYTES}) END ` +
  "FROM (SELECT neon.get_local_cache_state() AS s OFFSET 0) t, " +
  `pg_catalog.generate_series(1, greatest(coalesce(pg_catalog.length(s), 0), 1), ${STATE_CHUNK_BYTES}) o) ` +
  "TO STDOUT (FORMAT binary)";

export interface CompressedState {
  /** zstd (level 3) of the whole state. */
  compressed: Uint8Array;
  /** Uncompressed size. */
  bytes: number;
  /** Time spent compressing (overlapping the query), ms. */
  compressMs: number;
}

/**
 * Streams the state from Postgres into a zstd compressor, chunk by chunk, so only the
 * compressed copy is ever held whole. Null when the function returns NULL.
 */
export async function compressLocalCacheState(sql: Sql): Promise<CompressedState | null> {
  const stream = await sql.unsafe(CHUNKED_STATE_QUERY).readable();
  const input = new ByteReader(stream[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>, {
    endedEarly: () => new Error("LFC state ended early"),
  });
  const head = await input.take(19);
  if (!Buffer.from(head.subarray(0, 11)).equals(SIGNATURE)) {
    throw new Error("not a binary COPY stream");
  }
  await input.skip(new DataView(head.buffer, head.byteOffset + 15, 4).getUint32(0));

  const { createZstdCompress, constants } = await import("node:zlib");
  // Output in 1 MiB pieces instead of zlib's 16 KiB (83 MiB of output for a 256 MiB state is
  // ~5,000 fewer hand-overs from the compressing thread), and up to 4 MiB of input queued, so the
  // compressor has the next row while this loop waits for the one after it. Measured on a 256 MiB
  // state: compress + upload 2.14 s -> 1.65-1.71 s (zstd -3 plus curl: 1.44-1.50 s).
  // (zlib streams hand their options to the Transform they are; the typings list only zlib's.)
  const options: ZstdOptions & TransformOptions = {
    params: { [constants.ZSTD_c_compressionLevel]: 3 },
    chunkSize: 1 << 20,
    writableHighWaterMark: 4 << 20,
  };
  const z = createZstdCompress(options);
  const out: Buffer[] = [];
  let zError: Error | null = null;
  z.on("data", (c: Buffer) => out.push(c));
  z.on("error", (err: Error) => {
    zError = err;
  });
  const ended = new Promise<void>((resolve) => {
    z.on("end", resolve);
    z.on("error", () => resolve());
  });
  // Each wait removes both of its listeners, whichever fires: a large state waits thousands of
  // times, and an error listener left behind per wait piles up on the compressor.
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        z.off("drain", done);
        z.off("error", done);
        resolve();
      };
      z.on("drain", done);
      z.on("error", done);
    });
  let compressMs = 0;
  let bytes = 0;
  let isNull = false;
  let rows = 0;
  try {
    for (;;) {
      const count = (await input.view(2)).getInt16(0);
      if (count === -1) break;
      if (count !== 2) throw new Error("expected two columns from the chunked LFC state");
      const off = await input.view(8);
      if (off.getInt32(0) !== 4) throw new Error("bad offset column in the LFC state");
      if (off.getInt32(4) !== bytes + 1 || isNull) {
        throw new Error("LFC state chunks out of order");
      }
      const len = (await input.view(4)).getInt32(0);
      rows++;
      if (len === -1) {
        if (rows !== 1) throw new Error("LFC state chunks out of order");
        isNull = true;
        continue;
      }
      for await (const slice of input.slices(len)) {
        const t = performance.now();
        // The slice may be a view into a buffer the reader reuses: the compressor gets a copy
        // only when it queues it (write() consumes synchronously when it can).
        if (!z.write(Buffer.from(slice))) {
          await drained();
        }
        compressMs += performance.now() - t;
        if (zError) throw new ZstdError(zError);
      }
      bytes += len;
    }
    if (!(await input.atEnd())) throw new Error("unexpected data after the LFC state");
  } catch (err) {
    z.destroy();
    await input.close();
    throw err;
  }
  const t = performance.now();
  z.end();
  await ended;
  compressMs += performance.now() - t;
  if (zError) throw new ZstdError(zError);
  if (isNull) return null;
  const compressed = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  out.length = 0;
  return { compressed, bytes, compressMs };
}

/** A failure of the compressor, as opposed to the query (its cause is the zstd error). */
export class ZstdError extends Error {
  constructor(cause: unknown) {
    super("zstd compression failed", { cause });
  }
}
