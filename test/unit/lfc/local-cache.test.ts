import { expect, test } from "bun:test";
import { CopyBinaryField } from "../../../src/lfc/local-cache.ts";

// What Postgres 15 sends for COPY (select …) TO STDOUT (FORMAT binary), captured by hand from
// the format's documentation: signature, flags, extension length, then tuples and the trailer.
const header = Buffer.from("PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0", "latin1");
const row = (field: Buffer | null) => {
  const len = Buffer.alloc(4);
  len.writeInt32BE(field === null ? -1 : field.length);
  return Buffer.concat([Buffer.from([0, 1]), len, field ?? Buffer.alloc(0)]);
};
const trailer = Buffer.from([0xff, 0xff]);

function parse(stream: Buffer, chunk: number): Uint8Array | null {
  const p = new CopyBinaryField();
  for (let off = 0; off < stream.length; off += chunk) p.push(stream.subarray(off, off + chunk));
  return p.finish();
}

test("the field's bytes, NULL and empty, whatever the chunking", () => {
  const bytes = Buffer.from([1, 2, 0xff, 0, 7, 0x28, 0xb5]);
  for (let chunk = 1; chunk <= 40; chunk++) {
    expect(Buffer.from(parse(Buffer.concat([header, row(bytes), trailer]), chunk)!)).toEqual(bytes);
    expect(parse(Buffer.concat([header, row(null), trailer]), chunk)).toBeNull();
    expect(parse(Buffer.concat([header, row(Buffer.alloc(0)), trailer]), chunk)?.length).toBe(0);
  }
});

test("anything else is an error", () => {
  const ok = row(Buffer.from("x"));
  expect(() => parse(Buffer.concat([header, ok]), 4)).toThrow("exactly one row");
  expect(() => parse(Buffer.concat([header, ok, ok, trailer]), 4)).toThrow("exactly one row");
  expect(() => parse(Buffer.concat([header, ok.subarray(0, 6)]), 4)).toThrow("ended early");
  expect(() => parse(Buffer.from("not a copy stream at all"), 4)).toThrow("not a binary COPY");
});
