// POST /extension_server/{*filename}: preconditions in the reference's order, the library-name
// mapping, status codes and bodies, against the fake gateway.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { RemoteExtSpec } from "../../../src/api/spec.ts";
import { RemoteExtensions } from "../../../src/extensions/remote.ts";
import { goArch } from "../../../src/extensions/spec.ts";
import { createHttpApp } from "../../../src/http/app.ts";
import { extensionServerRoutes } from "../../../src/http/routes/extension-server.ts";
import { log } from "../../../src/log.ts";
import { createMetrics } from "../../../src/metrics/registry.ts";
import {
  type FakeExtensionServer,
  startFakeExtensionServer,
  tarZst,
} from "../../fakes/extension-server.ts";
import { TEST_TMP } from "../../support/proc.ts";

let root: string;
let sharedir: string;
let pkglibdir: string;
let gw: FakeExtensionServer;
const archive = (ext: string) => `latest/${goArch()}/v15/extensions/${ext}.tar.zst`;

const rspec: RemoteExtSpec = {
  public_extensions: ["anon"],
  custom_extensions: ["mine", "broken"],
  library_index: { anon: "anon", libmine: "mine", ghost: "ghost", nodata: "nodata" },
  extension_data: {
    anon: { control_data: {}, archive_path: "ignored" },
    mine: { control_data: {}, archive_path: "ignored" },
    broken: { control_data: {}, archive_path: "ignored" },
  },
};
// "nodata" is allowed but has no extension_data.
rspec.custom_extensions!.push("nodata");

beforeAll(() => {
  root = mkdtempSync(join(TEST_TMP, "ext-route-"));
  sharedir = join(root, "share");
  pkglibdir = join(root, "lib");
  mkdirSync(join(sharedir, "extension"), { recursive: true });
  mkdirSync(pkglibdir);
  gw = startFakeExtensionServer();
  gw.archives.set(
    archive("anon"),
    tarZst([{ type: "file", path: "share/extension/anon--1.0.sql", data: "anon" }]),
  );
  gw.archives.set(archive("mine"), tarZst([{ type: "file", path: "lib/libmine.so", data: "so" }]));
  gw.archives.set(archive("broken"), tarZst([{ type: "symlink", path: "lib/x", target: "/" }]));
});

afterAll(async () => {
  await gw?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

function app(opts: { baseUrl?: string | null; spec?: RemoteExtSpec | null | "none" } = {}) {
  const remote = new RemoteExtensions({
    baseUrl: opts.baseUrl === undefined ? `${gw.baseUrl}/` : opts.baseUrl,
    pgConfig: "/nonexistent/pg_config",
    pgMajor: 15,
    dirs: { sharedir, pkglibdir },
    metrics: createMetrics(),
  });
  const spec = opts.spec === undefined ? rspec : opts.spec;
  return createHttpApp({ name: "internal", logger: log }).use(
    extensionServerRoutes({
      remote,
      pspec: () => (spec === "none" ? null : { spec: { remote_extensions: spec } }),
    }),
  );
}

async function post(a: ReturnType<typeof app>, path: string) {
  return a.handle(new Request(`http://localhost${path}`, { method: "POST" }));
}

async function expectError(r: Response, status: number, error: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toBe("application/json");
  expect(await r.json()).toEqual({ error });
}

describe("POST /extension_server", () => {
  test("200 with an empty body; the files are in place", async () => {
    const r = await post(app(), "/extension_server/anon");
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("");
    expect(r.headers.get("content-type")).toBeNull();
    expect(existsSync(join(sharedir, "extension/anon--1.0.sql"))).toBe(true);
  });

  test("a library name loses its .so suffix and maps through library_index", async () => {
    const a = app();
    const r = await post(a, "/extension_server/libmine.so.3?is_library=true");
    expect(r.status).toBe(200);
    expect(existsSync(join(pkglibdir, "libmine.so"))).toBe(true);
    // Same archive again: cached, no second request.
    expect((await post(a, "/extension_server/libmine?is_library=true")).status).toBe(200);
    expect(gw.requests(archive("mine")).length).toBe(1);
  });

  test("400 for a malformed is_library", async () => {
    await expectError(
      await post(app(), "/extension_server/anon?is_library=yes"),
      400,
      "failed to deserialize query string: is_library: provided string was not `true` or `false`",
    );
  });

  test("412 without --remote-ext-base-url, also before a spec", async () => {
    await expectError(
      await post(app({ baseUrl: null, spec: "none" }), "/extension_server/anon"),
      412,
      "remote storage is not configured",
    );
  });

  test("412 without a spec", async () => {
    await expectError(
      await post(app({ spec: "none" }), "/extension_server/anon"),
      412,
      "compute is not configured: no spec",
    );
  });

  test("409 when the spec has no remote_extensions", async () => {
    await expectError(
      await post(app({ spec: null }), "/extension_server/anon"),
      409,
      "information about remote extensions is unavailable",
    );
  });

  test("404 for unknown libraries, disallowed extensions and missing extension_data", async () => {
    const a = app();
    await expectError(
      await post(a, "/extension_server/nolib.so?is_library=true"),
      404,
      "library nolib is not found",
    );
    await expectError(
      await post(a, "/extension_server/ghost.so?is_library=true"),
      404,
      "extension ghost is not found",
    );
    await expectError(
      await post(a, "/extension_server/other"),
      404,
      "extension other is not found",
    );
    await expectError(
      await post(a, "/extension_server/nodata"),
      404,
      "real_ext_name nodata is not found",
    );
    // Without is_library the name is an extension name, not a library name.
    await expectError(
      await post(a, "/extension_server/libmine"),
      404,
      "extension libmine is not found",
    );
  });

  test("500 when the gateway fails or the archive is refused (the reference answers 200)", async () => {
    const a = app();
    gw.force({ path: archive("anon"), status: 503, times: 1 });
    // A fresh app has a fresh cache, so anon is fetched again here.
    await expectError(
      await post(a, "/extension_server/anon"),
      500,
      "error downloading extension anon: remote extensions server is temporarily unavailable",
    );
    const r = await post(a, "/extension_server/broken");
    expect(r.status).toBe(500);
    expect(((await r.json()) as { error: string }).error).toContain("refusing symbolic link");
  });

  test("an empty filename is not routed", async () => {
    const r = await post(app(), "/extension_server/");
    expect(r.status).toBe(404);
    expect(await r.text()).toBe("");
  });

  test("GET is not allowed", async () => {
    const r = await app().handle(new Request("http://localhost/extension_server/anon"));
    expect(r.status).toBe(405);
  });

  test("the gateway saw no malformed requests", () => {
    expect(gw.violations).toEqual([]);
  });
});
