// The one tar header parser both readers use: the cases where the two readers used to differ.
import { describe, expect, test } from "bun:test";
import { readTar } from "../../../src/extensions/tar.ts";
import { applyMeta, type PendingMeta, parseHeader, TarError } from "../../../src/util/tar.ts";

function header(fields: {
  name: string;
  size?: Uint8Array | string;
  type?: string;
  magic?: string;
  prefix?: string;
}): Uint8Array {
  const h = new Uint8Array(512);
  const put = (off: number, s: string) => h.set(new TextEncoder().encode(s), off);
  put(0, fields.name);
  put(100, "0000644\0");
  if (fields.size instanceof Uint8Array) h.set(fields.size, 124);
  else put(124, `${(fields.size ?? "0").padStart(11, "0")}\0`);
  put(156, fields.type ?? "0");
  if (fields.magic !== undefined) put(257, fields.magic);
  if (fields.prefix !== undefined) put(345, fields.prefix);
  put(148, "        ");
  let sum = 0;
  for (const b of h) sum += b;
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

describe("parseHeader", () => {
  test("applies the ustar prefix for POSIX magic, with either version field", () => {
    expect(parseHeader(header({ name: "f", magic: "ustar\x0000", prefix: "a/b" }), 0).name).toBe(
      "a/b/f",
    );
    expect(parseHeader(header({ name: "f", magic: "ustar\x00  ", prefix: "a/b" }), 0).name).toBe(
      "a/b/f",
    );
  });

  test("ignores the prefix bytes of an old-GNU header", () => {
    expect(parseHeader(header({ name: "f", magic: "ustar  \0", prefix: "junk" }), 0).name).toBe(
      "f",
    );
  });

  test("reads base-256 sizes and refuses negative ones", () => {
    const big = new Uint8Array(12);
    big[0] = 0x80;
    big[11] = 0x10;
    expect(parseHeader(header({ name: "f", size: big }), 0).size).toBe(16);
    const negative = new Uint8Array(12).fill(0xff);
    expect(() => parseHeader(header({ name: "f", size: negative }), 0)).toThrow(
      "negative size in tar header",
    );
  });

  test("names the byte offset of a bad checksum", () => {
    const h = header({ name: "f" });
    h[0] = 0x41;
    expect(() => parseHeader(h, 1024)).toThrow(/^tar header checksum mismatch at byte 1024 /);
  });
});

describe("applyMeta", () => {
  test("pax records, with a NUL-padded tail tolerated", () => {
    const rec = "15 path=a/long\n";
    const rec2 = "11 size=42\n";
    const data = new Uint8Array(64);
    data.set(new TextEncoder().encode(rec + rec2));
    const into: PendingMeta = {};
    applyMeta("x", data, into);
    expect(into).toEqual({ path: "a/long", size: 42 });
  });

  test("a malformed pax record is an error", () => {
    expect(() => applyMeta("x", new TextEncoder().encode("99 path=x\n"), {})).toThrow(TarError);
  });

  test("GNU long names lose their NUL padding", () => {
    const into: PendingMeta = {};
    applyMeta("L", new TextEncoder().encode("very/long/name\0\0\0"), into);
    applyMeta("K", new TextEncoder().encode("target\0"), into);
    expect(into).toEqual({ path: "very/long/name", linkpath: "target" });
  });
});

describe("readTar over the shared parser", () => {
  test("refuses a negative base-256 size, as the streaming extractor does", () => {
    const negative = new Uint8Array(12).fill(0xff);
    const archive = new Uint8Array(2048);
    archive.set(header({ name: "f", size: negative }), 0);
    expect(() => readTar(archive)).toThrow("negative size in tar header");
  });

  test("tolerates a NUL-padded pax header, as the streaming extractor does", () => {
    const pax = new Uint8Array(512);
    pax.set(new TextEncoder().encode("15 path=a/long\n"));
    const archive = new Uint8Array(512 * 5);
    archive.set(header({ name: "PaxHeader", type: "x", size: (512).toString(8) }), 0);
    archive.set(pax, 512);
    archive.set(header({ name: "short", size: "1" }), 1024);
    archive[1536] = 0x41;
    const entries = readTar(archive);
    expect(entries.map((e) => [e.path, e.data.length])).toEqual([["a/long", 1]]);
  });
});
