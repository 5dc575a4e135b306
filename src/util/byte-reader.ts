// Exact byte counts out of a stream whose chunks have any size: the framing layer of the binary
// formats read from a stream (tar archives, binary COPY). Chunks are held only until consumed;
// what is asked for within one chunk comes back as a view into it, never copied.

export interface ByteReaderOptions {
  /** The error thrown when the source ends inside something asked for. */
  endedEarly?: () => Error;
  /** Wraps an error thrown by the source (a failed download, a corrupt compressed stream). */
  readError?: (err: unknown) => Error;
}

export class ByteReader {
  private chunks: Uint8Array[] = [];
  /** Bytes of chunks[0] already consumed. */
  private pos = 0;
  private buffered = 0;
  private ended = false;

  constructor(
    private readonly source: AsyncIterator<Uint8Array>,
    private readonly opts: ByteReaderOptions = {},
  ) {}

  /** Pulls one more chunk; false once the source has ended. */
  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    let r: IteratorResult<Uint8Array>;
    try {
      r = await this.source.next();
    } catch (err) {
      throw this.opts.readError ? this.opts.readError(err) : err;
    }
    if (r.done) {
      this.ended = true;
      return false;
    }
    if (r.value.byteLength > 0) {
      this.chunks.push(r.value);
      this.buffered += r.value.byteLength;
    }
    return true;
  }

  private endedEarly(): Error {
    return this.opts.endedEarly?.() ?? new Error("stream ended early");
  }

  /** True once `n` more bytes are buffered; false when the source ends first. */
  async has(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (!(await this.pull())) return false;
    }
    return true;
  }

  /**
   * The next `n` bytes: a view into the received chunk when they lie in one, else a copy. The
   * view is valid until the next read (a source may reuse its buffers): copy what is kept.
   */
  async take(n: number): Promise<Uint8Array> {
    if (!(await this.has(n))) throw this.endedEarly();
    const first = this.chunks[0] as Uint8Array | undefined;
    if (first && first.byteLength - this.pos >= n) {
      const out = first.subarray(this.pos, this.pos + n);
      this.consume(n);
      return out;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0] as Uint8Array;
      const k = Math.min(c.byteLength - this.pos, n - o);
      out.set(c.subarray(this.pos, this.pos + k), o);
      o += k;
      this.consume(k);
    }
    return out;
  }

  /** The next `n` bytes as a DataView (big-endian reads for wire formats). */
  async view(n: number): Promise<DataView> {
    const b = await this.take(n);
    return new DataView(b.buffer, b.byteOffset, n);
  }

  /** The next `n` bytes as views into the chunks as they arrive, without buffering them all. */
  async *slices(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.pull())) throw this.endedEarly();
      const c = this.chunks[0];
      if (!c) continue;
      const k = Math.min(left, c.byteLength - this.pos);
      const out = c.subarray(this.pos, this.pos + k);
      this.consume(k);
      left -= k;
      yield out;
    }
  }

  /** Discards the next `n` bytes. */
  async skip(n: number): Promise<void> {
    for await (const _ of this.slices(n)) {
      // discarded
    }
  }

  /** True when nothing is left: every byte consumed and the source ended. */
  async atEnd(): Promise<boolean> {
    return !(await this.has(1));
  }

  /** Releases the source (a stream's iterator cancels the stream). */
  async close(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    await this.source.return?.().catch(() => undefined);
  }

  private consume(n: number): void {
    this.pos += n;
    this.buffered -= n;
    const first = this.chunks[0] as Uint8Array;
    if (this.pos === first.byteLength) {
      this.chunks.shift();
      this.pos = 0;
    }
  }
}
