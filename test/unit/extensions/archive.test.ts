// The tar reader and the archive plan: what is accepted, where it goes, and what is refused.
import { describe, expect, test } from "bun:test";
import {
  ArchiveError,
  type InstallDirs,
  planArchive,
  planFromEntries,
} from "../../../src/extensions/archive.ts";
import { readTar, readTarStream } from "../../../src/extensions/tar.ts";
import { TarError } from "../../../src/util/tar.ts";
import {
  type TarSpecEntry,
  tarArchive,
  tarFileHeader,
  tarZst,
} from "../../fakes/extension-server.ts";
import { zstdZeroBomb } from "../../support/zstd-bomb.ts";

const dirs: InstallDirs = { shareExtension: "/pg/share/extension", pkglibdir: "/pg/lib" };
const plan = (entries: TarSpecEntry[]) => planFromEntries(readTar(tarArchive(entries)), dirs);

describe("readTar", () => {
  test("reads files, directories, modes and GNU long names", () => {
    const long = `share/extension/${"x".repeat(150)}.sql`;
    const entries = readTar(
      tarArchive([
        { type: "dir", path: "share/" },
        { type: "file", path: "share/extension/a--1.0.sql", data: "select 1;", mode: 0o640 },
        { type: "file", path: long, data: "long" },
        { type: "symlink", path: "lib/l.so", target: "/etc/passwd" },
      ]),
    );
    expect(entries.map((e) => [e.path, e.kind])).toEqual([
      ["share/", "directory"],
      ["share/extension/a--1.0.sql", "file"],
      [long, "file"],
      ["lib/l.so", "symlink"],
    ]);
    expect(new TextDecoder().decode(entries[1]!.data)).toBe("select 1;");
    expect(entries[1]!.mode).toBe(0o640);
    expect(entries[3]!.linkname).toBe("/etc/passwd");
  });

  test("refuses a corrupted header and a truncated archive", () => {
    const tar = tarArchive([{ type: "file", path: "lib/a.so", data: "x".repeat(600) }]);
    const bad = tar.slice();
    bad[10] = 0x41;
    expect(() => readTar(bad)).toThrow(TarError);
    expect(() => readTar(tar.subarray(0, 700))).toThrow("truncated tar archive");
  });
});

describe("planFromEntries", () => {
  test("maps share/extension/ and lib/ to their directories, './' prefixes included", () => {
    const p = plan([
      { type: "dir", path: "./" },
      { type: "dir", path: "./share/" },
      { type: "dir", path: "./share/extension/" },
      { type: "file", path: "./share/extension/a--1.0.sql", data: "s" },
      { type: "dir", path: "share/extension/a/" },
      { type: "file", path: "share/extension/a/b.sql", data: "b" },
      { type: "dir", path: "lib/" },
      { type: "file", path: "lib/a.so", data: "so", mode: 0o4755 },
      { type: "file", path: "lib/sub/c.so", data: "c" },
    ]);
    expect(p.dirs).toEqual(["/pg/share/extension/a", "/pg/lib/sub"]);
    expect(p.files.map((f) => [f.dest, f.mode])).toEqual([
      ["/pg/share/extension/a--1.0.sql", 0o644],
      ["/pg/share/extension/a/b.sql", 0o644],
      ["/pg/lib/a.so", 0o755],
      ["/pg/lib/sub/c.so", 0o644],
    ]);
  });

  const refused: [string, TarSpecEntry[], string][] = [
    ["absolute path", [{ type: "file", path: "/etc/x", data: "x" }], "absolute path"],
    [
      "'..' inside share/extension",
      [{ type: "file", path: "share/extension/../../../x", data: "x" }],
      "'..'",
    ],
    ["'..' at the top", [{ type: "file", path: "../lib/x.so", data: "x" }], "'..'"],
    ["symlink", [{ type: "symlink", path: "lib/x.so", target: "/etc/passwd" }], "symbolic link"],
    ["hard link", [{ type: "hardlink", path: "lib/x.so", target: "lib/y.so" }], "hard link"],
    ["character device", [{ type: "chardev", path: "lib/null" }], "character device"],
    ["block device", [{ type: "blockdev", path: "lib/sda" }], "block device"],
    ["FIFO", [{ type: "fifo", path: "share/extension/p" }], "FIFO"],
    ["contiguous file", [{ type: "raw", path: "lib/c.so", typeflag: "7" }], "type '7'"],
    ["file outside the two trees", [{ type: "file", path: "bin/postgres", data: "x" }], "only"],
    ["share/ but not share/extension/", [{ type: "file", path: "share/doc/x" }], "only"],
    ["a file where a skeleton dir is", [{ type: "file", path: "lib", data: "x" }], "refusing"],
    ["empty component", [{ type: "file", path: "lib//x.so", data: "x" }], "non-canonical"],
    [
      "file and directory at one path",
      [
        { type: "file", path: "lib/a", data: "x" },
        { type: "file", path: "lib/a/b.so", data: "x" },
      ],
      "both a file and a directory",
    ],
  ];
  for (const [name, entries, message] of refused) {
    test(`refuses: ${name}`, () => {
      expect(() => plan(entries)).toThrow(ArchiveError);
      expect(() => plan(entries)).toThrow(message);
    });
  }
});

describe("planArchive", () => {
  test("decompresses zstd and plans", async () => {
    const p = await planArchive(
      tarZst([{ type: "file", path: "lib/a.so", data: "so" }]),
      dirs,
      1 << 20,
    );
    expect(p.files.map((f) => f.dest)).toEqual(["/pg/lib/a.so"]);
  });

  test("refuses bytes that are not zstd", async () => {
    await expect(planArchive(new Uint8Array([1, 2, 3, 4]), dirs, 1 << 20)).rejects.toThrow(
      ArchiveError,
    );
  });

  test("refuses an archive that expands beyond the cap", async () => {
    const big = tarZst([{ type: "file", path: "lib/a.so", data: "0".repeat(1 << 20) }]);
    expect(big.length).toBeLessThan(10_000);
    await expect(planArchive(big, dirs, 100_000)).rejects.toThrow("expands to more than");
  });
});

describe("bombs", () => {
  const GiB = 1 << 30;

  /** The decompressed archive as a stream that counts what was pulled from it. */
  function counted(compressed: Uint8Array) {
    const seen = { bytes: 0 };
    const stream = new Blob([compressed])
      .stream()
      .pipeThrough(new DecompressionStream("zstd"))
      .pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, c) {
            seen.bytes += chunk.byteLength;
            c.enqueue(chunk);
          },
        }),
      ) as ReadableStream<Uint8Array>;
    return { stream, seen };
  }

  test("zstdZeroBomb is a real zstd frame: the prefix, then the zeros", () => {
    const prefix = new TextEncoder().encode("head");
    const out = Bun.zstdDecompressSync(zstdZeroBomb(prefix, 300_000));
    expect(out.byteLength).toBe(4 + 300_000);
    expect(Buffer.from(out.subarray(0, 4)).toString()).toBe("head");
    expect(out.subarray(4).every((b) => b === 0)).toBe(true);
  });

  test("a 144 KiB archive holding one 4 GiB file is refused at its header", async () => {
    const bomb = zstdZeroBomb(tarFileHeader("lib/bomb.so", 4 * GiB), 4 * GiB);
    expect(bomb.byteLength).toBeLessThan(150_000);
    const { stream, seen } = counted(bomb);
    await expect(readTarStream(stream, { maxBytes: GiB, maxEntries: 100 })).rejects.toThrow(
      "archive expands to more than 1073741824 bytes (entry 'lib/bomb.so' of 4294967296 bytes at byte 0)",
    );
    // Only the header (and the decoder's first output chunk) was unpacked.
    expect(seen.bytes).toBeLessThan(4 << 20);
    await expect(planArchive(bomb, dirs, GiB)).rejects.toThrow(ArchiveError);
  });

  test("4 GiB of zeros is an empty archive: reading stops at the first zero block", async () => {
    const { stream, seen } = counted(zstdZeroBomb(new Uint8Array(0), 4 * GiB));
    expect(await readTarStream(stream, { maxBytes: GiB, maxEntries: 100 })).toEqual([]);
    expect(seen.bytes).toBeLessThan(4 << 20);
  });

  test("files that each fit but together pass the cap: refused at the header that crosses it", async () => {
    const file = (i: number) =>
      ({ type: "file", path: `lib/f${i}.so`, data: "x".repeat(40_000) }) as const;
    const archive = tarZst([file(0), file(1), file(2)]);
    await expect(planArchive(archive, dirs, 100_000)).rejects.toThrow(
      "archive expands to more than 100000 bytes (entry 'lib/f2.so' of 40000 bytes at byte 81920)",
    );
  });

  test("more entries than allowed: refused at the first one past the limit", async () => {
    const entries: TarSpecEntry[] = [];
    for (let i = 0; i < 60; i++) entries.push({ type: "file", path: `lib/e${i}`, data: "" });
    const archive = tarZst(entries);
    await expect(planArchive(archive, dirs, 1 << 20, 50)).rejects.toThrow(
      "archive has more than 50 entries",
    );
    expect((await planArchive(archive, dirs, 1 << 20, 60)).files).toHaveLength(60);
  });

  test("a stream that ends inside an entry is truncated", async () => {
    const tar = tarArchive([{ type: "file", path: "lib/a.so", data: "x".repeat(5000) }]);
    const { stream } = counted(Bun.zstdCompressSync(tar.subarray(0, 3000)));
    await expect(readTarStream(stream, { maxBytes: GiB, maxEntries: 10 })).rejects.toThrow(
      "truncated tar archive",
    );
  });
});
