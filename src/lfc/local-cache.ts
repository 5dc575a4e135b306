// Reading `neon.get_local_cache_state()` in binary. postgres.js receives query results in text
// format only, which turns a bytea into hex text of twice its size, encoded by the server and
// buffered twice by the client (seconds and about 5x the state in memory for a large state). A
// binary COPY of the same select carries the raw bytes, which are streamed into one buffer.
import type { Sql } from "postgres";

const SIGNATURE = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");

/** The state, or null when the function returns NULL (LFC disabled or empty). */
export async function readLocalCacheState(sql: Sql): Promise<Uint8Array | null> {
  const stream = await sql
    .unsafe("COPY (select neon.get_local_cache_state()) TO STDOUT (FORMAT binary)")
    .readable();
  const parser = new CopyBinaryField();
  for await (const chunk of stream) parser.push(chunk as Buffer);
  return parser.finish();
}

/**
 * The single field of a single-row binary COPY: signature, flags, header extension, then
 * int16 field count, int32 length (-1 = NULL) and the bytes, then the int16 -1 trailer.
 */
export class CopyBinaryField {
  private head: Buffer[] = [];
  private headLen = 0;
  private out: Uint8Array | null = null;
  private filled = 0;
  private isNull = false;
  private tail: Buffer[] = [];

  push(chunk: Buffer): void {
    if (this.out === null && !this.isNull) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      const buf = Buffer.concat(this.head, this.headLen);
      if (buf.length < 19) return;
      if (!buf.subarray(0, 11).equals(SIGNATURE)) throw new Error("not a binary COPY stream");
      const start = 19 + buf.readUInt32BE(15);
      if (buf.length < start + 6) return;
      if (buf.readInt16BE(start) !== 1) throw new Error("expected one column from the LFC state");
      const len = buf.readInt32BE(start + 2);
      this.head = [];
      if (len === -1) {
        this.isNull = true;
        this.tail.push(buf.subarray(start + 6));
        return;
      }
      chunk = buf.subarray(start + 6);
      if (chunk.length >= len) {
        // The usual case: Postgres sends the row as one CopyData message, which postgres.js
        // hands over whole; keep a view instead of copying hundreds of megabytes.
        this.out = chunk.subarray(0, len);
        this.filled = len;
        chunk = chunk.subarray(len);
      } else {
        this.out = new Uint8Array(len);
      }
    }
    if (this.out !== null && this.filled < this.out.length) {
      const n = Math.min(chunk.length, this.out.length - this.filled);
      this.out.set(chunk.subarray(0, n), this.filled);
      this.filled += n;
      chunk = chunk.subarray(n);
    }
    if (chunk.length > 0) this.tail.push(chunk);
  }

  finish(): Uint8Array | null {
    const tail = Buffer.concat(this.tail);
    if ((this.out === null && !this.isNull) || (this.out && this.filled < this.out.length)) {
      throw new Error("LFC state ended early");
    }
    // The trailer: a field count of -1. A second row would mean this is not the neon function.
    if (tail.length !== 2 || tail.readInt16BE(0) !== -1) {
      throw new Error("expected exactly one row from the LFC state");
    }
    return this.out;
  }
}
