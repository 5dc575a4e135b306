// The tar reader and the archive plan: what is accepted, where it goes, and what is refused.
import { describe, expect, test } from "bun:test";
import {
  ArchiveError,
  type InstallDirs,
  planArchive,
  planFromEntries,
} from "../../../src/extensions/archive.ts";
import { readTar } from "../../../src/extensions/tar.ts";
import { TarError } from "../../../src/util/tar.ts";
import { type TarSpecEntry, tarArchive, tarZst } from "../../fakes/extension-server.ts";

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
