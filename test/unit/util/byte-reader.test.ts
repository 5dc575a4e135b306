import { describe, expect, test } from "bun:test";
import { ByteReader } from "../../../src/util/byte-reader.ts";

/** A source yielding `chunks` as given, recording whether it was released. */
function source(chunks: number[][], failAfter?: Error) {
  const state = { returned: false, pulls: 0 };
  async function* gen(): AsyncGenerator<Uint8Array> {
    try {
      for (const c of chunks) {
        state.pulls++;
        yield new Uint8Array(c);
      }
      if (failAfter) throw failAfter;
    } finally {
      state.returned = true;
    }
  }
  return { it: gen(), state };
}

const bytes = (u: Uint8Array) => [...u];

describe("ByteReader", () => {
  test("take across chunk boundaries, empty chunks included; a view within one chunk", async () => {
    const { it } = source([[1, 2], [], [3, 4, 5], [6]]);
    const r = new ByteReader(it);
    const one = await r.take(1);
    expect(bytes(one)).toEqual([1]);
    expect(one.byteLength).toBe(1);
    expect(one.buffer.byteLength).toBe(2); // a view into the first chunk
    expect(bytes(await r.take(3))).toEqual([2, 3, 4]);
    expect(bytes(await r.take(2))).toEqual([5, 6]);
    expect(await r.atEnd()).toBe(true);
  });

  test("has pulls only as far as asked, and says false when the source ends first", async () => {
    const { it, state } = source([[1], [2], [3]]);
    const r = new ByteReader(it);
    expect(await r.has(2)).toBe(true);
    expect(state.pulls).toBe(2);
    expect(await r.has(4)).toBe(false);
    expect(bytes(await r.take(3))).toEqual([1, 2, 3]);
  });

  test("view reads big-endian integers that straddle chunks", async () => {
    const { it } = source([[0xff], [0xfe, 0, 0], [0, 7]]);
    const r = new ByteReader(it);
    expect((await r.view(2)).getInt16(0)).toBe(-2);
    expect((await r.view(4)).getInt32(0)).toBe(7);
  });

  test("slices yields views as chunks arrive and leaves the rest for the next read", async () => {
    const { it } = source([
      [1, 2, 3],
      [4, 5, 6, 7],
    ]);
    const r = new ByteReader(it);
    await r.skip(1);
    const got: number[][] = [];
    for await (const s of r.slices(4)) got.push(bytes(s));
    expect(got).toEqual([
      [2, 3],
      [4, 5],
    ]);
    expect(bytes(await r.take(2))).toEqual([6, 7]);
    expect(await r.atEnd()).toBe(true);
  });

  test("a source that ends inside a take or a slice: the endedEarly error", async () => {
    const opts = { endedEarly: () => new Error("state ended early") };
    const a = new ByteReader(source([[1, 2]]).it, opts);
    await expect(a.take(3)).rejects.toThrow("state ended early");
    const b = new ByteReader(source([[1, 2]]).it, opts);
    await expect(b.skip(3)).rejects.toThrow("state ended early");
    const c = new ByteReader(source([]).it);
    await expect(c.take(1)).rejects.toThrow("stream ended early");
  });

  test("a failing source: readError wraps the error; without it the error passes as is", async () => {
    const boom = new Error("connection reset");
    const wrapped = new ByteReader(source([[1]], boom).it, {
      readError: (err) => new Error(`download failed: ${(err as Error).message}`, { cause: err }),
    });
    expect(bytes(await wrapped.take(1))).toEqual([1]);
    const err = (await wrapped.take(1).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe("download failed: connection reset");
    expect(err.cause).toBe(boom);
    const plain = new ByteReader(source([], boom).it);
    await expect(plain.has(1)).rejects.toBe(boom);
  });

  test("close releases the source", async () => {
    const { it, state } = source([[1], [2], [3]]);
    const r = new ByteReader(it);
    await r.take(1);
    await r.close();
    expect(state.returned).toBe(true);
  });
});
