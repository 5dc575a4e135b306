// Exact byte counts pulled out of an async stream whose chunks have any size: the framing layer
// of the binary formats read from a stream (tar archives, binary COPY). Chunks are held only
// until consumed; what is asked for within one chunk comes back as a view into it, never copied.
import { ByteQueue } from "./byte-queue.ts";

export interface ByteReaderOptions {
  /** The error thrown when the source ends inside something asked for. */
  endedEarly?: () => Error;
  /** Wraps an error thrown by the source (a failed download, a corrupt compressed stream). */
  readError?: (err: unknown) => Error;
}

export class ByteReader {
  private readonly queue = new ByteQueue();
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
    this.queue.push(r.value);
    return true;
  }

  private endedEarly(): Error {
    return this.opts.endedEarly?.() ?? new Error("stream ended early");
  }

  /** True once `n` more bytes are buffered; false when the source ends first. */
  async has(n: number): Promise<boolean> {
    while (this.queue.length < n) {
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
    return this.queue.take(n);
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
      if (this.queue.length === 0 && !(await this.pull())) throw this.endedEarly();
      const out = this.queue.takeSome(left);
      left -= out.length;
      if (out.length > 0) yield out;
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
    await this.source.return?.().catch(() => undefined);
  }
}
