// A FIFO of received bytes that keeps the chunks as they came (never concatenated) and hands out
// exact byte counts: a view when they lie in one chunk, a copy only when they straddle chunks.
// The framing layer under the Postgres wire protocol reader and util/byte-reader.ts.

/** Received bytes not yet consumed. */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0; // offset into chunks[0]
  length = 0;

  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  private byteAt(i: number): number {
    let idx = i + this.head;
    for (const c of this.chunks) {
      if (idx < c.length) return c[idx] as number;
      idx -= c.length;
    }
    throw new RangeError("ByteQueue underflow");
  }

  u32At(i: number): number {
    return (
      ((this.byteAt(i) << 24) |
        (this.byteAt(i + 1) << 16) |
        (this.byteAt(i + 2) << 8) |
        this.byteAt(i + 3)) >>>
      0
    );
  }

  peek(): number {
    return this.byteAt(0);
  }

  take(n: number): Uint8Array {
    if (n > this.length) throw new RangeError("ByteQueue underflow");
    this.length -= n;
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      // The common case: the message lies in one chunk, so no copy.
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return out;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0] as Uint8Array;
      const k = Math.min(c.length - this.head, n - o);
      out.set(c.subarray(this.head, this.head + k), o);
      o += k;
      this.head += k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    return out;
  }

  /** Up to `max` bytes from the first chunk, as a view (nothing when the queue is empty). */
  takeSome(max: number): Uint8Array {
    const first = this.chunks[0];
    if (!first) return new Uint8Array(0);
    return this.take(Math.min(max, first.length - this.head));
  }
}
