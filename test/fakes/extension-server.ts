// A strict in-process remote extension gateway: GET
// `/<prefix>/<build_tag>/<arch>/v<N>/extensions/<ext>.tar.zst` serves archives the test put in,
// 404 for an unknown one; forced statuses and delays for fault tests; every request recorded.
// Strict: any other method or path shape, a query string or a request body is answered 400 and
// recorded in `violations`, so a test can assert there were none.
//
// Also a tiny tar writer (ustar, GNU long names) and tarZst(), to build archives in the test,
// including the malicious kinds compute_ctl must refuse.

export interface ExtRequest {
  method: string;
  path: string;
  status: number;
  at: number;
}

export interface ExtForced {
  /** Exact archive path below the prefix (e.g. `latest/amd64/v15/extensions/x.tar.zst`), or any. */
  path?: string;
  /** Answer this status with a text body instead of serving. */
  status?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Number of requests it applies to (default: all). */
  times?: number;
}

export interface FakeExtensionServer {
  port: number;
  /** The --remote-ext-base-url to give compute_ctl (with the prefix, no trailing slash). */
  baseUrl: string;
  /** Archive path below the prefix -> bytes. */
  archives: Map<string, Uint8Array>;
  log: ExtRequest[];
  violations: string[];
  force(f: ExtForced): void;
  clearForced(): void;
  /** Requests for `path` (below the prefix), or all. */
  requests(path?: string): ExtRequest[];
  stop(): Promise<void>;
}

const ARCHIVE_PATH = /^[^/]+\/[^/]+\/v\d+\/extensions\/[^/]+\.tar\.zst$/;

export function startFakeExtensionServer(opts: { prefix?: string } = {}): FakeExtensionServer {
  const prefix = `/${(opts.prefix ?? "pg-ext-s3-gateway").replace(/^\/+|\/+$/g, "")}/`;
  const archives = new Map<string, Uint8Array>();
  const log: ExtRequest[] = [];
  const violations: string[] = [];
  let forced: (ExtForced & { left: number })[] = [];

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    development: false,
    async fetch(req) {
      const url = new URL(req.url);
      const entry: ExtRequest = {
        method: req.method,
        path: url.pathname,
        status: 0,
        at: Date.now(),
      };
      log.push(entry);
      const answer = (status: number, body?: Uint8Array | string) => {
        entry.status = status;
        return new Response(body ?? null, { status });
      };
      const reject = (why: string) => {
        violations.push(`${req.method} ${url.pathname}${url.search}: ${why}`);
        return answer(400, why);
      };
      if (req.method !== "GET") return reject("only GET is served");
      if (url.search !== "") return reject("unexpected query string");
      if (req.body !== null && (await req.arrayBuffer()).byteLength > 0) {
        return reject("unexpected request body");
      }
      if (!url.pathname.startsWith(prefix)) return reject("path outside the gateway prefix");
      const path = decodeURIComponent(url.pathname.slice(prefix.length));
      if (!ARCHIVE_PATH.test(path)) return reject("not an extension archive path");
      const f = forced.find((x) => x.left > 0 && (x.path === undefined || x.path === path));
      if (f) {
        f.left -= 1;
        if (f.delayMs) await Bun.sleep(f.delayMs);
        if (f.status !== undefined) return answer(f.status, `forced ${f.status}`);
      }
      const bytes = archives.get(path);
      return bytes ? answer(200, bytes) : answer(404, "not found");
    },
  });
  const port = server.port!;
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}${prefix.slice(0, -1)}`,
    archives,
    log,
    violations,
    force(f) {
      forced.push({ ...f, left: f.times ?? Number.POSITIVE_INFINITY });
    },
    clearForced() {
      forced = [];
    },
    requests(path) {
      return log.filter((r) => path === undefined || r.path === `${prefix}${path}`);
    },
    stop: async () => {
      await server.stop(true);
    },
  };
}

export type TarSpecEntry =
  | { type: "file"; path: string; data?: string | Uint8Array; mode?: number }
  | { type: "dir"; path: string; mode?: number }
  | { type: "symlink" | "hardlink"; path: string; target: string }
  | { type: "chardev" | "blockdev" | "fifo"; path: string }
  /** Any raw type flag, e.g. "7" (contiguous) or "S" (sparse). */
  | { type: "raw"; path: string; typeflag: string; data?: string };

const enc = new TextEncoder();

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

function header(name: string, typeflag: string, size: number, mode: number, link = ""): Uint8Array {
  const h = new Uint8Array(512);
  const put = (off: number, s: string | Uint8Array, max: number) => {
    const b = typeof s === "string" ? enc.encode(s) : s;
    if (b.length > max) throw new Error(`tar field too long: ${s}`);
    h.set(b, off);
  };
  put(0, name, 100);
  put(100, octal(mode, 8), 8);
  put(108, octal(0, 8), 8);
  put(116, octal(0, 8), 8);
  put(124, octal(size, 12), 12);
  put(136, octal(0, 12), 12);
  put(148, "        ", 8);
  put(156, typeflag, 1);
  put(157, link, 100);
  put(257, "ustar\0", 6);
  put(263, "00", 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `, 8);
  return h;
}

function padded(data: Uint8Array): Uint8Array[] {
  const rest = data.length % 512;
  return rest === 0 ? [data] : [data, new Uint8Array(512 - rest)];
}

/** A tar archive of `entries`, in order; names over 100 bytes get a GNU long-name entry. */
export function tarArchive(entries: TarSpecEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    let name = e.path;
    const nameBytes = enc.encode(name);
    if (nameBytes.length > 100) {
      const data = new Uint8Array([...nameBytes, 0]);
      parts.push(header("././@LongLink", "L", data.length, 0), ...padded(data));
      name = name.slice(0, 99);
    }
    switch (e.type) {
      case "file": {
        const data = typeof e.data === "string" ? enc.encode(e.data) : (e.data ?? new Uint8Array());
        parts.push(header(name, "0", data.length, e.mode ?? 0o644), ...padded(data));
        break;
      }
      case "dir":
        parts.push(header(name, "5", 0, e.mode ?? 0o755));
        break;
      case "symlink":
      case "hardlink":
        parts.push(header(name, e.type === "symlink" ? "2" : "1", 0, 0o777, e.target));
        break;
      case "chardev":
      case "blockdev":
      case "fifo":
        parts.push(header(name, { chardev: "3", blockdev: "4", fifo: "6" }[e.type], 0, 0o644));
        break;
      case "raw": {
        const data = enc.encode(e.data ?? "");
        parts.push(header(name, e.typeflag, data.length, 0o644), ...padded(data));
        break;
      }
    }
  }
  parts.push(new Uint8Array(1024));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** tarArchive() compressed with zstd, as the gateway serves it. */
export function tarZst(entries: TarSpecEntry[]): Uint8Array {
  return Bun.zstdCompressSync(tarArchive(entries));
}

/** The header block of one regular file of `size` bytes at `path` (its data not included). */
export function tarFileHeader(path: string, size: number): Uint8Array {
  return header(path, "0", size, 0o644);
}

/**
 * A writable copy of the Debian Postgres 15 tree under `root`, laid out as the original
 * (`usr/lib/postgresql/15`, `usr/share/postgresql/15`). Debian's pg_config is relocatable: it
 * derives its answers from its own real path, so the copy's `bin/pg_config` reports the copy's
 * sharedir and pkglibdir (checked by the tests that use it).
 */
export function relocatedPgTree(root: string, major = 15): { pgbin: string; pgConfig: string } {
  for (const [src, parent] of [
    [`/usr/lib/postgresql/${major}`, `${root}/usr/lib/postgresql`],
    [`/usr/share/postgresql/${major}`, `${root}/usr/share/postgresql`],
  ] as const) {
    const mk = Bun.spawnSync(["mkdir", "-p", parent]);
    const cp = Bun.spawnSync(["cp", "-a", src, parent], { stderr: "pipe" });
    if (!mk.success || !cp.success) {
      throw new Error(`copying ${src} failed: ${cp.stderr.toString().trim()}`);
    }
  }
  const bin = `${root}/usr/lib/postgresql/${major}/bin`;
  return { pgbin: `${bin}/postgres`, pgConfig: `${bin}/pg_config` };
}
