// Remote extensions through the compiled binary: Postgres runs from a writable copy of the
// Postgres 15 tree (its pg_config reports the copy's directories), the control file is written
// at start, and /extension_server downloads and installs the extension's SQL from a fake gateway
// so that CREATE EXTENSION works.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { dirname, join } from "node:path";
import { relocatedPgTree, startFakeExtensionServer, tarZst } from "../fakes/extension-server.ts";
import { cleanup, makeUserDir, RUN_AS } from "../support/proc.ts";
import { psql, start, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

const CONTROL = "comment = 'says hello'\ndefault_version = '1.0'\nrelocatable = true\n";
const SQL = "CREATE FUNCTION hello() RETURNS text LANGUAGE sql AS $$ SELECT 'hello' $$;\n";

test("control file at start, download on request, CREATE EXTENSION works, one download", async () => {
  const root = await makeUserDir("pgtree-");
  const tree = relocatedPgTree(root);
  if (RUN_AS) Bun.spawnSync(["chown", "-R", `${RUN_AS.uid}:${RUN_AS.gid}`, root]);
  const gateway = startFakeExtensionServer();
  const arch = process.arch === "arm64" ? "arm64" : "amd64";
  const archive = `latest/${arch}/v15/extensions/hello.tar.zst`;
  gateway.archives.set(
    archive,
    tarZst([
      { type: "dir", path: "share/extension" },
      { type: "file", path: "share/extension/hello--1.0.sql", data: SQL },
    ]),
  );

  const s = await start({
    realBindir: dirname(tree.pgbin),
    spec: {
      remote_extensions: {
        public_extensions: ["hello"],
        custom_extensions: null,
        library_index: {},
        extension_data: { hello: { control_data: { "hello.control": CONTROL }, archive_path: "" } },
      },
    },
    env: {},
    extraArgs: ["--remote-ext-base-url", gateway.baseUrl],
  });
  await waitStatus(s, "running");
  const share = join(root, "usr/share/postgresql/15/extension");
  expect(await Bun.file(join(share, "hello.control")).text()).toBe(CONTROL);
  await expect(psql(s, "CREATE EXTENSION hello")).rejects.toThrow();

  for (let i = 0; i < 2; i++) {
    const r = await s.compute.post("internal:/extension_server/hello?is_library=false");
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("");
  }
  expect(gateway.requests()).toHaveLength(1);
  expect(await Bun.file(join(share, "hello--1.0.sql")).text()).toBe(SQL);
  await psql(s, "CREATE EXTENSION hello");
  expect(await psql(s, "SELECT hello()")).toBe("hello");
  const metrics = await (await s.compute.get("/metrics")).text();
  expect(metrics).toContain(
    'compute_ctl_remote_ext_requests_total{http_status="200 OK",filename="hello.tar.zst"} 1',
  );
  expect(gateway.violations).toEqual([]);
  await terminate(s, "immediate");
  expect(await s.compute.exited).toBe(0);
  await gateway.stop();
});
