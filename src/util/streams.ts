// Reading streams: a whole stream into memory with a cap, for inputs that are small by contract
// (request bodies, extension archives) but must not be allowed to grow without bound; and a text
// stream line by line.

/** Reads `stream` to its end; past `limit` bytes it cancels the stream and throws `tooLarge()`. */
export async function readAllBounded(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  tooLarge: () => Error,
): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/**
 * The lines of a UTF-8 stream, without their newlines. Text after the last newline is a line too,
 * unless `unterminated` is "drop" (a line protocol, where only a finished line is a message).
 */
export async function* textLines(
  stream: ReadableStream<Uint8Array>,
  unterminated: "keep" | "drop" = "keep",
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    for (let nl = pending.indexOf("\n"); nl !== -1; nl = pending.indexOf("\n")) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
  pending += decoder.decode();
  if (unterminated === "keep" && pending !== "") yield pending;
}
