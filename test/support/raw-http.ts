// Raw HTTP over TCP, for requests fetch() cannot send (odd Host headers, malformed framing) and
// for counting every response the server writes on one connection.
export interface RawExchange {
  /** Everything the server wrote until it closed the connection or `waitMs` passed. */
  text: string;
  /** The status codes of the responses found in `text`, in order. */
  statuses: number[];
}

export async function rawHttp(
  port: number,
  parts: (string | Uint8Array)[],
  opts: { waitMs?: number; gapMs?: number } = {},
): Promise<RawExchange> {
  let text = "";
  let done = () => {};
  const closed = new Promise<void>((r) => {
    done = r;
  });
  const decoder = new TextDecoder();
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        text += decoder.decode(d, { stream: true });
      },
      close() {
        done();
      },
      error() {
        done();
      },
    },
  });
  for (const part of parts) {
    sock.write(part);
    if (opts.gapMs) await Bun.sleep(opts.gapMs);
  }
  await Promise.race([closed, Bun.sleep(opts.waitMs ?? 1500)]);
  sock.end();
  const statuses = [...text.matchAll(/(?:^|\r\n|\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) =>
    Number(m[1]),
  );
  return { text, statuses };
}
