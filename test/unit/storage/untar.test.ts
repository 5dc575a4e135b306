import { afterAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statfsSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { extractTarGz, TarError } from "../../../src/storage/untar.ts";
import { basebackupTemplate } from "../../fakes/basebackup-template.ts";
import { cleanup, makeUserDir, waitFor } from "../../support/proc.ts";

// Generous: on a disk mounted with `discard`, removing what the tests wrote can take seconds.
afterAll(cleanup, 120_000);

// ---- a tiny tar writer, so each test states the exact bytes it feeds in

interface Ent {
  name: string;
  type?: string;
  data?: Uint8Array | string;
  mode?: number;
  linkname?: string;
  /** "gnu" (the pageserver's), "ustar" (POSIX, with prefix) */
  format?: "gnu" | "ustar";
  prefix?: string;
  /** Size field as GNU base-256 instead of octal. */
  base256Size?: boolean;
  corruptChecksum?: boolean;
}

const enc = new TextEncoder();

function octal(h: Uint8Array, off: number, len: number, v: number) {
  h.set(enc.encode(`${v.toString(8).padStart(len - 1, "0")}\0`), off);
}

function header(e: Ent, size: number): Uint8Array {
  const h = new Uint8Array(512);
  h.set(enc.encode(e.name).subarray(0, 100), 0);
  octal(h, 100, 8, e.mode ?? 0o600);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  if (e.base256Size) {
    h[124] = 0x80;
    let v = size;
    for (let i = 135; i > 124; i--) {
      h[i] = v % 256;
      v = Math.floor(v / 256);
    }
  } else octal(h, 124, 12, size);
  octal(h, 136, 12, 1_700_000_000);
  h[156] = (e.type ?? "0").charCodeAt(0);
  if (e.linkname) h.set(enc.encode(e.linkname), 157);
  if (e.format === "ustar") {
    h.set(enc.encode("ustar\u000000"), 257);
    if (e.prefix) h.set(enc.encode(e.prefix), 345);
  } else {
    h.set(enc.encode("ustar  \0"), 257);
  }
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  if (e.corruptChecksum) sum += 1;
  h.set(enc.encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  return h;
}

function tar(entries: Ent[], opts: { end?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const data = typeof e.data === "string" ? enc.encode(e.data) : (e.data ?? new Uint8Array());
    parts.push(header(e, data.length), data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  if (opts.end) parts.push(new Uint8Array(1024));
  return Buffer.concat(parts);
}

function pax(records: Record<string, string>): string {
  let out = "";
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len++;
    out += `${len}${body}`;
  }
  return out;
}

const gz = (b: Uint8Array) => Bun.gzipSync(b as Uint8Array<ArrayBuffer>);

/** Yields `buf` in pieces of `size` bytes (boundaries land everywhere). */
async function* chunks(buf: Uint8Array, size = 65536): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function* fileChunks(path: string): AsyncGenerator<Uint8Array> {
  for await (const c of Bun.file(path).stream()) yield c;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

function listTree(root: string, rel = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(root, r));
    out.push(`${r}${st.isDirectory() ? "/" : ""}`);
    if (st.isDirectory()) out.push(...listTree(root, r));
  }
  return out;
}

// ---- tests

describe("extractTarGz on the template basebackup", () => {
  test("matches tar's own listing, sizes, modes and contents, with any chunking", async () => {
    const { tarGzPath } = await basebackupTemplate();
    const gzBytes = await Bun.file(tarGzPath).bytes();
    // tar -tvzf: "-rw------- 0/0  3 2026-01-01 00:00 PG_VERSION"
    const listing = Bun.spawnSync(["tar", "-tvzf", tarGzPath]).stdout.toString().trim().split("\n");
    const expected = listing.map((l) => {
      const f = l.split(/\s+/);
      return { perms: f[0] as string, size: Number(f[2]), name: f.slice(5).join(" ") };
    });
    const reference = await makeUserDir("untar-ref-");
    expect(Bun.spawnSync(["tar", "-xzf", tarGzPath, "-C", reference]).exitCode).toBe(0);

    for (const size of [65536, 7919, 511]) {
      const dest = join(await makeUserDir("untar-tpl-"), "pgdata");
      const r = await extractTarGz(chunks(gzBytes, size), dest);
      expect(r.compressedBytes).toBe(gzBytes.length);
      expect(r.files + r.dirs).toBe(expected.length);
      for (const e of expected) {
        const p = join(dest, e.name);
        const st = lstatSync(p);
        expect(`${e.name}:${st.isDirectory() ? "d" : "-"}`).toBe(`${e.name}:${e.perms[0]}`);
        const modeBits = e.perms.slice(1);
        const rwx = (m: number) =>
          [6, 3, 0]
            .map((s) => ["r", "w", "x"].map((c, i) => ((m >> (s + 2 - i)) & 1 ? c : "-")).join(""))
            .join("");
        expect(`${e.name}:${rwx(st.mode & 0o777)}`).toBe(`${e.name}:${modeBits}`);
        if (!st.isDirectory()) expect(`${e.name}:${st.size}`).toBe(`${e.name}:${e.size}`);
      }
      expect(listTree(dest)).toEqual(listTree(reference));
      const diff = Bun.spawnSync(["diff", "-r", reference, dest]);
      expect(diff.stdout.toString()).toBe("");
      expect(diff.exitCode).toBe(0);
    }
  }, 60_000);

  test("has what a pageserver tar has and nothing it never has", async () => {
    const { tarGzPath } = await basebackupTemplate();
    const dest = join(await makeUserDir("untar-shape-"), "pgdata");
    await extractTarGz(fileChunks(tarGzPath), dest);
    expect(existsSync(join(dest, "postgresql.conf"))).toBe(false);
    expect(existsSync(join(dest, "postmaster.pid"))).toBe(false);
    expect(existsSync(join(dest, "postmaster.opts"))).toBe(false);
    expect(statSync(join(dest, "pg_dynshmem")).isDirectory()).toBe(true);
    expect(readdirSync(join(dest, "pg_wal")).some((f) => /^[0-9A-F]{24}$/.test(f))).toBe(true);
    expect(readFileSync(join(dest, "neon.signal"), "utf8")).toBe("PREV LSN: none");
    expect(readFileSync(join(dest, "zenith.signal"), "utf8")).toBe("PREV LSN: none");
    expect(readFileSync(join(dest, "pg_hba.conf"), "utf8")).toContain(
      "host    replication     all             ::1/128                 trust",
    );
    expect(statSync(join(dest, "global", "pg_control")).size).toBe(8192);
  }, 60_000);
});

describe("extractTarGz rejects", () => {
  test("a truncated gzip stream", async () => {
    const { tarGzPath } = await basebackupTemplate();
    const gzBytes = await Bun.file(tarGzPath).bytes();
    const dest = await makeUserDir("untar-trunc-");
    const err = await rejection(extractTarGz(chunks(gzBytes.subarray(0, 100_000)), dest));
    expect(err.message).toBe("gzip decompression failed");
    expect(String((err.cause as Error)?.message)).toMatch(/unexpected end of file/);
  }, 60_000);

  test("a complete gzip stream holding a truncated tar", async () => {
    const whole = tar([{ name: "a", data: "x".repeat(2000) }]);
    const dest = await makeUserDir("untar-trunctar-");
    const err = await rejection(extractTarGz(chunks(gz(whole.subarray(0, 1024))), dest));
    expect(err).toBeInstanceOf(TarError);
    expect(err.message).toMatch(/unexpected end of tar archive/);
  });

  test("garbage after the gzip stream", async () => {
    const bytes = Buffer.concat([gz(tar([{ name: "a", data: "x" }])), enc.encode("garbage!")]);
    const err = await rejection(extractTarGz(chunks(bytes), await makeUserDir("untar-garb-")));
    expect(err.message).toBe("gzip decompression failed");
  });

  test("a header with a bad checksum", async () => {
    const bytes = tar([
      { name: "ok", data: "1" },
      { name: "bad", data: "2", corruptChecksum: true },
    ]);
    const dest = await makeUserDir("untar-cksum-");
    const err = await rejection(extractTarGz(chunks(gz(bytes)), dest));
    expect(err).toBeInstanceOf(TarError);
    expect(err.message).toMatch(/^tar header checksum mismatch at byte 1024 /);
    expect(existsSync(join(dest, "bad"))).toBe(false);
  });

  test("entry types a basebackup never has, by name", async () => {
    const cases: [string, string][] = [
      ["1", "hard link"],
      ["2", "symbolic link"],
      ["3", "character device"],
      ["6", "FIFO"],
      ["S", "GNU sparse file"],
    ];
    for (const [type, what] of cases) {
      const bytes = tar([{ name: "x", type, linkname: "y" }]);
      const err = await rejection(extractTarGz(chunks(gz(bytes)), await makeUserDir("untar-t-")));
      expect(err).toBeInstanceOf(TarError);
      expect(err.message).toBe(
        `unsupported tar entry "x" (${what}): a basebackup holds only regular files and directories`,
      );
    }
  });
});

describe("extractTarGz keeps everything inside destDir", () => {
  async function expectRefused(entries: Ent[], pattern: RegExp, setup?: (dest: string) => void) {
    const root = await makeUserDir("untar-escape-");
    const dest = join(root, "pgdata");
    const outside = join(root, "outside");
    mkdirSync(dest);
    mkdirSync(outside);
    setup?.(dest);
    const err = await rejection(extractTarGz(chunks(gz(tar(entries))), dest));
    expect(err).toBeInstanceOf(TarError);
    expect(err.message).toMatch(pattern);
    expect(readdirSync(outside)).toEqual([]);
    expect(readdirSync(root).sort()).toEqual(["outside", "pgdata"]);
    return { root, dest, outside };
  }

  test("'..' components", async () => {
    await expectRefused([{ name: "../outside/x", data: "evil" }], /'\.\.' component/);
    await expectRefused([{ name: "a/../../outside/x", data: "evil" }], /'\.\.' component/);
    await expectRefused([{ name: "..", type: "5" }], /'\.\.' component/);
  });

  test("absolute paths", async () => {
    const root = await makeUserDir("untar-abs-");
    const target = join(root, "x");
    const err = await rejection(
      extractTarGz(chunks(gz(tar([{ name: target, data: "evil" }]))), join(root, "pgdata")),
    );
    expect(err.message).toBe(`refusing absolute path "${target}"`);
    expect(existsSync(target)).toBe(false);
    const viaPax = tar([
      { name: "PaxHeaders/x", type: "x", data: pax({ path: "/etc/compute_ctl-evil" }) },
      { name: "innocent", data: "evil" },
    ]);
    const err2 = await rejection(extractTarGz(chunks(gz(viaPax)), join(root, "pgdata")));
    expect(err2.message).toBe('refusing absolute path "/etc/compute_ctl-evil"');
    expect(existsSync("/etc/compute_ctl-evil")).toBe(false);
  });

  test("a symlink entry, and a path through a symlink already in destDir", async () => {
    await expectRefused(
      [
        { name: "link", type: "2", linkname: "../outside" },
        { name: "link/x", data: "evil" },
      ],
      /symbolic link/,
    );
    await expectRefused([{ name: "link/x", data: "evil" }], /"link" is a symbolic link/, (d) =>
      symlinkSync("../outside", join(d, "link")),
    );
    await expectRefused([{ name: "link/sub/", type: "5" }], /"link" is a symbolic link/, (d) =>
      symlinkSync("../outside", join(d, "link")),
    );
  });

  test("a symlink or hard link at the file's own name is replaced, not written through", async () => {
    const root = await makeUserDir("untar-replace-");
    const dest = join(root, "pgdata");
    mkdirSync(dest);
    writeFileSync(join(root, "victim"), "original");
    symlinkSync(join(root, "victim"), join(dest, "a"));
    linkSync(join(root, "victim"), join(dest, "b"));
    await extractTarGz(
      chunks(
        gz(
          tar([
            { name: "a", data: "new a" },
            { name: "b", data: "new b" },
          ]),
        ),
      ),
      dest,
    );
    expect(readFileSync(join(root, "victim"), "utf8")).toBe("original");
    expect(lstatSync(join(dest, "a")).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(dest, "a"), "utf8")).toBe("new a");
    expect(readFileSync(join(dest, "b"), "utf8")).toBe("new b");
  });
});

describe("extractTarGz reads the whole stream", () => {
  test("past end-of-archive zero blocks and across concatenated archives and gzip members", async () => {
    const a = tar([{ name: "a", data: "A" }], { end: true });
    const b = tar(
      [
        { name: "d/", type: "5", mode: 0o755 },
        { name: "d/b", data: "B" },
      ],
      { end: true },
    );
    const c = tar([{ name: "c", data: "C" }]); // no end marker, as the pageserver writes it
    const dest = await makeUserDir("untar-concat-");
    const r = await extractTarGz(
      chunks(Buffer.concat([gz(Buffer.concat([a, b])), gz(c)]), 100),
      dest,
    );
    expect(r.files).toBe(3);
    expect(readFileSync(join(dest, "a"), "utf8")).toBe("A");
    expect(readFileSync(join(dest, "d/b"), "utf8")).toBe("B");
    expect(readFileSync(join(dest, "c"), "utf8")).toBe("C");
  });

  test("an error from the source after a complete archive rejects with that error", async () => {
    const { tarGzPath } = await basebackupTemplate();
    const boom = new Error("ERROR: basebackup failed (from the pageserver)");
    async function* src() {
      yield* fileChunks(tarGzPath);
      throw boom;
    }
    const err = await rejection(extractTarGz(src(), await makeUserDir("untar-late-")));
    expect(err).toBe(boom);
  }, 60_000);

  test("an error from the source mid-stream rejects with that error", async () => {
    const { tarGzPath } = await basebackupTemplate();
    const bytes = await Bun.file(tarGzPath).bytes();
    const boom = new Error("connection reset");
    async function* src() {
      yield bytes.subarray(0, 1_000_000);
      throw boom;
    }
    const err = await rejection(extractTarGz(src(), await makeUserDir("untar-mid-")));
    expect(err).toBe(boom);
  }, 60_000);

  test("a bad archive stops reading the source and releases it", async () => {
    let finished = false;
    let pulled = 0;
    const bad = gz(tar([{ name: "x", type: "2", linkname: "y" }]));
    async function* src() {
      try {
        yield bad;
        for (;;) {
          pulled++;
          yield new Uint8Array(0);
          await Bun.sleep(1);
        }
      } finally {
        finished = true;
      }
    }
    const err = await rejection(extractTarGz(src(), await makeUserDir("untar-stop-")));
    expect(err).toBeInstanceOf(TarError);
    await waitFor(() => finished, { timeoutMs: 2000, what: "the source to be released" });
    expect(pulled).toBeLessThan(100);
  });

  test("counts compressed bytes as they arrive", async () => {
    const bytes = gz(tar([{ name: "a", data: "x".repeat(100_000) }]));
    let seen = 0;
    const r = await extractTarGz(chunks(bytes, 1000), await makeUserDir("untar-count-"), {
      onCompressedBytes: (n) => {
        seen += n;
      },
    });
    expect(seen).toBe(bytes.length);
    expect(r.compressedBytes).toBe(bytes.length);
  });
});

describe("extractTarGz entry details", () => {
  test("GNU long names, pax paths and sizes, ustar prefixes, base-256 sizes", async () => {
    const long = `${"d".repeat(80)}/${"f".repeat(90)}`;
    const paxName = `p/${"q".repeat(150)}`;
    const bytes = tar([
      { name: "././@LongLink", type: "L", data: `${long}\0` },
      { name: long.slice(0, 99), data: "long" },
      { name: "g", type: "g", data: pax({ comment: "ignored" }) },
      { name: "x", type: "x", data: pax({ path: paxName, mtime: "1.5", size: "3" }) },
      { name: "truncated-name", data: "pax" },
      { name: "name", prefix: "pre/fix", format: "ustar", data: "ustar" },
      { name: "b256", data: "base256", base256Size: true },
    ]);
    const dest = await makeUserDir("untar-names-");
    const r = await extractTarGz(chunks(gz(bytes), 333), dest);
    expect(r.files).toBe(4);
    expect(readFileSync(join(dest, long), "utf8")).toBe("long");
    expect(readFileSync(join(dest, paxName), "utf8")).toBe("pax");
    expect(readFileSync(join(dest, "pre/fix/name"), "utf8")).toBe("ustar");
    expect(readFileSync(join(dest, "b256"), "utf8")).toBe("base256");
    expect(existsSync(join(dest, "truncated-name"))).toBe(false);
    expect(existsSync(join(dest, "g"))).toBe(false);
  });

  test("modes come from the header, without setuid/setgid; directories get theirs last", async () => {
    const bytes = tar([
      { name: "ro/", type: "5", mode: 0o500 },
      { name: "ro/file", data: "x", mode: 0o4755 },
      { name: "g", data: "y", mode: 0o2640 },
      { name: "plain", data: "z", mode: 0o600 },
      { name: "open/", type: "5", mode: 0o755 },
    ]);
    const dest = await makeUserDir("untar-modes-");
    await extractTarGz(chunks(gz(bytes)), dest);
    expect(statSync(join(dest, "ro")).mode & 0o7777).toBe(0o500);
    expect(statSync(join(dest, "ro/file")).mode & 0o7777).toBe(0o755);
    expect(statSync(join(dest, "g")).mode & 0o7777).toBe(0o640);
    expect(statSync(join(dest, "plain")).mode & 0o7777).toBe(0o600);
    expect(statSync(join(dest, "open")).mode & 0o7777).toBe(0o755);
    chmodSync(join(dest, "ro"), 0o700); // so cleanup can remove it as non-root too
  });

  test("extracts over a previous, partial extraction", async () => {
    const { tarGzPath } = await basebackupTemplate();
    const bytes = await Bun.file(tarGzPath).bytes();
    const dest = join(await makeUserDir("untar-again-"), "pgdata");
    await rejection(extractTarGz(chunks(bytes.subarray(0, bytes.length >> 1)), dest));
    // Make the leftovers awkward: read-only, longer than the real file, a stray file.
    writeFileSync(join(dest, "PG_VERSION"), "stale content, longer than the real one");
    chmodSync(join(dest, "PG_VERSION"), 0o400);
    writeFileSync(
      join(dest, "postgresql.conf"),
      "# written by compute_ctl before the basebackup\n",
    );
    await extractTarGz(chunks(bytes), dest);
    expect(readFileSync(join(dest, "PG_VERSION"), "utf8")).toBe("15\n");
    expect(statSync(join(dest, "PG_VERSION")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dest, "postgresql.conf"), "utf8")).toContain("compute_ctl");
    const reference = await makeUserDir("untar-again-ref-");
    Bun.spawnSync(["tar", "-xzf", tarGzPath, "-C", reference]);
    writeFileSync(join(reference, "postgresql.conf"), readFileSync(join(dest, "postgresql.conf")));
    expect(Bun.spawnSync(["diff", "-r", reference, dest]).exitCode).toBe(0);
  }, 60_000);
});

function vmHwmMiB(): number {
  const m = readFileSync("/proc/self/status", "utf8").match(/^VmHWM:\s+(\d+) kB/m);
  return Number(m?.[1]) / 1024;
}

describe("extractTarGz memory", () => {
  test(
    "a 2 GiB (zero-padded) basebackup extracts with under 100 MB of RSS growth",
    async () => {
      const { tarGzPath } = await basebackupTemplate({ padBytes: 2 * 2 ** 30 });
      // tmpfs when it has room: the same code path without 2 GiB of disk writes and discards.
      // Its pages are not in our RSS, as page-cache pages of a disk file are not either.
      const shm = "/dev/shm";
      const roomy = (() => {
        try {
          const s = statfsSync(shm);
          return s.bavail * s.bsize > 4 * 2 ** 30;
        } catch {
          return false;
        }
      })();
      const root = roomy ? mkdtempSync(join(shm, "compute_ctl-test-untar-2g-")) : null;
      const dest = join(root ?? (await makeUserDir("untar-2g-")), "pgdata");
      try {
        Bun.gc(true);
        // Reset the high-water mark so earlier tests' peaks do not hide this one's.
        try {
          writeFileSync("/proc/self/clear_refs", "5");
        } catch {
          // not permitted: the comparison below is then only an upper bound
        }
        const rssBefore = process.memoryUsage().rss;
        const hwmBefore = vmHwmMiB();
        const r = await extractTarGz(fileChunks(tarGzPath), dest);
        const rssGrowth = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
        const hwmGrowth = vmHwmMiB() - hwmBefore;
        expect(r.tarBytes).toBeGreaterThan(2 * 2 ** 30);
        expect(r.compressedBytes).toBeLessThan(50 * 2 ** 20);
        expect(statSync(join(dest, "base/5/999999")).size).toBe(2 ** 30);
        expect(statSync(join(dest, "base/5/999999.1")).size).toBe(2 ** 30);
        console.log(
          `2 GiB extraction: RSS +${rssGrowth.toFixed(1)} MiB, VmHWM +${hwmGrowth.toFixed(1)} MiB`,
        );
        expect({ rssGrowth, hwmGrowth, under: rssGrowth < 100 && hwmGrowth < 100 }).toMatchObject({
          under: true,
        });
      } finally {
        await rm(root ?? dest, { recursive: true, force: true }); // 2 GiB: not left for afterAll
      }
    },
    { timeout: 600_000 },
  );
});
