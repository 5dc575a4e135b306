// RemoteExtensions against the fake gateway and a relocated, writable copy of the Postgres 15
// tree: download + install, the cache, one download for concurrent requests, refused archives
// leaving the disk untouched, gateway failures, metric labels, control files and the preload.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ComputeMetrics } from "../../../src/api/responses.ts";
import { emptyComputeMetrics } from "../../../src/api/responses.ts";
import type { ComputeSpec, RemoteExtSpec } from "../../../src/api/spec.ts";
import { RemoteExtensions, readPgDirs } from "../../../src/extensions/remote.ts";
import { goArch } from "../../../src/extensions/spec.ts";
import { createMetrics, type Metrics } from "../../../src/metrics/registry.ts";
import {
  type FakeExtensionServer,
  relocatedPgTree,
  startFakeExtensionServer,
  type TarSpecEntry,
  tarZst,
} from "../../fakes/extension-server.ts";
import { TEST_TMP } from "../../support/proc.ts";

let root: string;
let pgConfig: string;
let sharedir: string;
let pkglibdir: string;
let gw: FakeExtensionServer;

const ARCH = goArch();
const archive = (ext: string) => `latest/${ARCH}/v15/extensions/${ext}.tar.zst`;

beforeAll(() => {
  root = mkdtempSync(join(TEST_TMP, "remote-ext-"));
  ({ pgConfig } = relocatedPgTree(root));
  sharedir = join(root, "usr/share/postgresql/15");
  pkglibdir = join(root, "usr/lib/postgresql/15/lib");
  gw = startFakeExtensionServer();
});

afterAll(async () => {
  await gw?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

function remote(opts: { metrics?: Metrics; timings?: ComputeMetrics; baseUrl?: string | null }) {
  return new RemoteExtensions({
    baseUrl: opts.baseUrl === undefined ? `${gw.baseUrl}/` : opts.baseUrl,
    pgConfig,
    pgMajor: 15,
    metrics: opts.metrics ?? createMetrics(),
    timings: opts.timings,
    downloadTimeoutMs: 5_000,
  });
}

/** Every path with its size under the two install directories, to prove nothing changed. */
function snapshot(): string[] {
  const out: string[] = [];
  for (const base of [join(sharedir, "extension"), pkglibdir]) {
    for (const f of readdirSync(base, { recursive: true }) as string[]) {
      out.push(`${base}/${f}:${statSync(join(base, f)).size}`);
    }
  }
  return out.sort();
}

async function counter(metrics: Metrics) {
  return (await metrics.remoteExtRequests.get()).values.map((v) => ({ ...v.labels, n: v.value }));
}

const sqlOnly = (ext: string): TarSpecEntry[] => [
  { type: "dir", path: "share/" },
  { type: "dir", path: "share/extension/" },
  { type: "file", path: `share/extension/${ext}--1.0.sql`, data: `-- ${ext}\n` },
];

describe("pg_config of the relocated tree", () => {
  test("reports the copy's sharedir and pkglibdir", async () => {
    expect(await readPgDirs(pgConfig)).toEqual({ sharedir, pkglibdir });
  });
});

describe("download", () => {
  test("fetches the archive once and installs share/extension and lib files", async () => {
    const metrics = createMetrics();
    const data = tarZst([
      ...sqlOnly("ext_a"),
      { type: "dir", path: "share/extension/ext_a/" },
      { type: "file", path: "share/extension/ext_a/more.sql", data: "more" },
      { type: "dir", path: "lib/" },
      { type: "file", path: "lib/ext_a.so", data: "ELF", mode: 0o755 },
    ]);
    gw.archives.set(archive("ext_a"), data);
    const r = remote({ metrics });
    expect(await r.download("ext_a")).toBe(data.length);
    expect(readFileSync(join(sharedir, "extension/ext_a--1.0.sql"), "utf8")).toBe("-- ext_a\n");
    expect(readFileSync(join(sharedir, "extension/ext_a/more.sql"), "utf8")).toBe("more");
    expect(readFileSync(join(pkglibdir, "ext_a.so"), "utf8")).toBe("ELF");
    expect(statSync(join(pkglibdir, "ext_a.so")).mode & 0o777).toBe(0o755);
    // No temporary files left behind.
    expect(readdirSync(pkglibdir).filter((f) => f.endsWith(".tmp"))).toEqual([]);

    // Cache hit: no second request, 0 bytes.
    expect(await r.download("ext_a")).toBe(0);
    expect(gw.requests(archive("ext_a")).length).toBe(1);
    expect(await counter(metrics)).toEqual([
      { http_status: "200 OK", filename: "ext_a.tar.zst", n: 1 },
    ]);
    expect(gw.violations).toEqual([]);
  });

  test("concurrent requests for one archive are served by one download", async () => {
    gw.archives.set(archive("ext_b"), tarZst(sqlOnly("ext_b")));
    gw.force({ path: archive("ext_b"), delayMs: 300, times: 1 });
    const r = remote({});
    const sizes = await Promise.all([1, 2, 3, 4, 5].map(() => r.download("ext_b")));
    expect(gw.requests(archive("ext_b")).length).toBe(1);
    expect(sizes.filter((s) => s > 0).length).toBe(1);
    expect(existsSync(join(sharedir, "extension/ext_b--1.0.sql"))).toBe(true);
  });

  const malicious: [string, TarSpecEntry[]][] = [
    ["absolute path", [{ type: "file", path: "/tmp/evil-abs", data: "x" }]],
    ["'..' path", [{ type: "file", path: "share/extension/../../evil", data: "x" }]],
    ["symlink", [{ type: "symlink", path: "lib/evil.so", target: "/etc/passwd" }]],
    ["hard link", [{ type: "hardlink", path: "lib/evil.so", target: "/etc/passwd" }]],
    ["character device", [{ type: "chardev", path: "lib/evil-dev" }]],
    ["block device", [{ type: "blockdev", path: "lib/evil-blk" }]],
    ["FIFO", [{ type: "fifo", path: "lib/evil-fifo" }]],
    ["file outside share/extension and lib", [{ type: "file", path: "bin/evil", data: "x" }]],
  ];
  for (const [name, bad] of malicious) {
    test(`refuses an archive with a ${name} and writes nothing`, async () => {
      const ext = `evil_${name.replace(/\W+/g, "_")}`;
      // Good entries first: they must not be written either.
      gw.archives.set(
        archive(ext),
        tarZst([
          ...sqlOnly(ext),
          { type: "file", path: `lib/${ext}.so`, data: "ok" },
          ...bad,
          { type: "file", path: `share/extension/${ext}--2.0.sql`, data: "after" },
        ]),
      );
      const before = snapshot();
      const r = remote({});
      await expect(r.download(ext)).rejects.toThrow("refusing");
      expect(snapshot()).toEqual(before);
      expect(existsSync("/tmp/evil-abs")).toBe(false);
      // A failure is not cached: the next request downloads again.
      await expect(r.download(ext)).rejects.toThrow("refusing");
      expect(gw.requests(archive(ext)).length).toBe(2);
    });
  }

  test("404 and 503 from the gateway fail with the reference's texts and labels", async () => {
    const metrics = createMetrics();
    const r = remote({ metrics });
    await expect(r.download("missing")).rejects.toThrow(
      "error downloading extension missing: unexpected remote extensions server response status code: 404 Not Found",
    );
    gw.archives.set(archive("flaky"), tarZst(sqlOnly("flaky")));
    gw.force({ path: archive("flaky"), status: 503, times: 1 });
    await expect(r.download("flaky")).rejects.toThrow(
      "remote extensions server is temporarily unavailable",
    );
    gw.force({ path: archive("flaky"), status: 500, times: 1 });
    await expect(r.download("flaky")).rejects.toThrow("status code: 500 Internal Server Error");
    // Not cached after failures: the next try succeeds.
    expect(await r.download("flaky")).toBeGreaterThan(0);
    expect(
      (await counter(metrics)).sort((a, b) =>
        String(a.http_status).localeCompare(String(b.http_status)),
      ),
    ).toEqual([
      { http_status: "200 OK", filename: "flaky.tar.zst", n: 1 },
      { http_status: "404 Not Found", filename: "missing.tar.zst", n: 1 },
      { http_status: "500 Internal Server Error", filename: "flaky.tar.zst", n: 1 },
      { http_status: "503 Service Unavailable", filename: "flaky.tar.zst", n: 1 },
    ]);
  });

  test("an unreachable gateway counts as 'unknown'", async () => {
    const metrics = createMetrics();
    const dead = startFakeExtensionServer();
    const url = `${dead.baseUrl}/`;
    await dead.stop();
    const r = remote({ metrics, baseUrl: url });
    await expect(r.download("x")).rejects.toThrow("could not perform remote extensions server");
    expect(await counter(metrics)).toEqual([
      { http_status: "unknown", filename: "x.tar.zst", n: 1 },
    ]);
  });

  test("without a base URL nothing is fetched", async () => {
    const r = remote({ baseUrl: null });
    expect(r.configured).toBe(false);
    await expect(r.download("ext_a")).rejects.toThrow("not configured");
  });
});

function rspec(over: Partial<RemoteExtSpec> = {}): RemoteExtSpec {
  return {
    public_extensions: ["pub_ext"],
    custom_extensions: ["cust_ext"],
    library_index: { pub_lib: "pub_ext", cust_lib: "cust_ext", denied_lib: "denied_ext" },
    extension_data: {
      pub_ext: {
        control_data: { "pub_ext.control": "default_version = '1.0'\n" },
        archive_path: "",
      },
      cust_ext: { control_data: { "cust_ext.control": "cust\n" }, archive_path: "" },
      denied_ext: { control_data: { "denied_ext.control": "no\n" }, archive_path: "" },
    },
    ...over,
  };
}

function pspecWith(r: RemoteExtSpec, settings: string | null, conf: string | null) {
  const spec = {
    remote_extensions: r,
    cluster: {
      settings: settings === null ? null : [{ name: "shared_preload_libraries", value: settings }],
      postgresql_conf: conf,
    },
  };
  return { spec: spec as unknown as ComputeSpec };
}

describe("prepareAtStart", () => {
  test("writes allowed control files if absent, preloads libraries, fills the timings", async () => {
    const local = join(sharedir, "extension/cust_ext.control");
    await Bun.write(local, "local wins\n");
    gw.archives.set(archive("pub_ext"), tarZst(sqlOnly("pub_ext")));
    gw.archives.set(archive("cust_ext"), tarZst(sqlOnly("cust_ext")));
    const timings = emptyComputeMetrics();
    const r = remote({ timings });
    await r.prepareAtStart(
      pspecWith(rspec(), "neon,pub_lib", "x=1\nshared_preload_libraries='cust_lib,other'\n"),
    );
    expect(readFileSync(join(sharedir, "extension/pub_ext.control"), "utf8")).toBe(
      "default_version = '1.0'\n",
    );
    expect(readFileSync(local, "utf8")).toBe("local wins\n");
    expect(existsSync(join(sharedir, "extension/denied_ext.control"))).toBe(false);
    expect(existsSync(join(sharedir, "extension/pub_ext--1.0.sql"))).toBe(true);
    expect(existsSync(join(sharedir, "extension/cust_ext--1.0.sql"))).toBe(true);
    const sizes = [archive("pub_ext"), archive("cust_ext")].map((p) => gw.archives.get(p)!.length);
    expect(timings.num_ext_downloaded).toBe(2);
    expect(timings.largest_ext_size).toBe(Math.max(...sizes));
    expect(timings.total_ext_download_size).toBe(sizes[0]! + sizes[1]!);
    expect(timings.load_ext_ms).toBeGreaterThanOrEqual(0);
  });

  test("a failed preload download is logged and start goes on", async () => {
    const timings = emptyComputeMetrics();
    const r = remote({ timings });
    const spec = rspec({ library_index: { gone_lib: "pub_ext" }, public_extensions: ["pub_ext"] });
    gw.force({ path: archive("pub_ext"), status: 503 });
    try {
      await r.prepareAtStart(pspecWith(spec, "gone_lib", null));
    } finally {
      gw.clearForced();
    }
    expect(timings.num_ext_downloaded).toBe(0);
  });

  test("a preload library mapped to a disallowed extension rejects, as in the reference", async () => {
    const r = remote({});
    await expect(r.prepareAtStart(pspecWith(rspec(), "denied_lib", null))).rejects.toThrow(
      "extension denied_ext is not found",
    );
  });

  test("without a base URL only the control files are written", async () => {
    const timings = emptyComputeMetrics();
    timings.num_ext_downloaded = 7;
    const before = gw.log.length;
    const r = remote({ timings, baseUrl: null });
    const spec = rspec({
      public_extensions: ["solo"],
      custom_extensions: null,
      library_index: { solo: "solo" },
      extension_data: { solo: { control_data: { "solo.control": "solo\n" }, archive_path: "" } },
    });
    await r.prepareAtStart(pspecWith(spec, "solo", null));
    expect(readFileSync(join(sharedir, "extension/solo.control"), "utf8")).toBe("solo\n");
    expect(gw.log.length).toBe(before);
    expect(timings.num_ext_downloaded).toBe(0);
  });

  test("control file names that are not plain file names are skipped", async () => {
    const r = remote({});
    const spec = rspec({
      public_extensions: ["sneaky"],
      extension_data: {
        sneaky: { control_data: { "../../sneaky.control": "x" }, archive_path: "" },
      },
    });
    await r.prepareAtStart(pspecWith(spec, null, null));
    expect(existsSync(join(sharedir, "../sneaky.control"))).toBe(false);
    expect(existsSync(join(root, "usr/share/sneaky.control"))).toBe(false);
  });
});
