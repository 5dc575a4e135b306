// local_proxy through the compiled binary: config.json under the host root and SIGHUPs to the
// (fake) local_proxy that holds the pid file's lock, at the reference's moments: in the
// background at start, synchronously in the primary's configuration (unless
// skip_pg_catalog_updates), and on every reconfigure.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdir, readFile } from "node:fs/promises";
import { configure } from "../support/configure.ts";
import { makeFakeHost } from "../support/host.ts";
import { startFakeLocalProxy } from "../support/local-proxy.ts";
import { installNeonStub } from "../support/neon-stub.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { start, statusOf, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

const stub = installNeonStub();
const primaryTest = stub.installed ? test : test.skip;

const LOCAL_PROXY = {
  jwks: [
    {
      id: "auth",
      role_names: ["authenticated"],
      jwks_url: "https://auth.example/jwks.json",
      provider_name: "auth",
      jwt_audience: null,
    },
  ],
};

describe("local_proxy", () => {
  test("skip_pg_catalog_updates: a start sends exactly one SIGHUP, a reconfigure one more", async () => {
    const host = await makeFakeHost();
    const lp = await startFakeLocalProxy(host.path("/etc/local_proxy/pid"));
    const s = await start({ spec: { local_proxy_config: LOCAL_PROXY }, env: host.env });
    await waitStatus(s, "running");
    await waitFor(async () => (await lp.hups()) === 1, { what: "one SIGHUP", timeoutMs: 10_000 });
    expect(await readFile(host.path("/etc/local_proxy/config.json"), "utf8")).toBe(
      JSON.stringify(LOCAL_PROXY, null, 2),
    );
    await Bun.sleep(500);
    expect(await lp.hups()).toBe(1);

    const spec = { ...s.stack.spec, local_proxy_config: { jwks: [] } };
    expect((await configure(s, spec)).code).toBe(200);
    await waitFor(async () => (await lp.hups()) === 2, {
      what: "a second SIGHUP",
      timeoutMs: 10_000,
    });
    expect(await readFile(host.path("/etc/local_proxy/config.json"), "utf8")).toBe(
      '{\n  "jwks": []\n}',
    );
    expect((await terminate(s, "immediate")).code).toBe(200);
    await s.compute.exited;
    await s.stack.stop();
  });

  primaryTest(
    "catalog updates: the background one and the primary's synchronous one both signal",
    async () => {
      const host = await makeFakeHost();
      const lp = await startFakeLocalProxy(host.path("/etc/local_proxy/pid"));
      const s = await start({
        skipCatalogUpdates: false,
        spec: { local_proxy_config: LOCAL_PROXY },
        env: host.env,
      });
      await waitStatus(s, "running");
      await waitFor(async () => (await lp.hups()) === 2, {
        what: "two SIGHUPs",
        timeoutMs: 10_000,
      });
      expect((await terminate(s, "immediate")).code).toBe(200);
      await s.compute.exited;
      await s.stack.stop();
    },
  );

  primaryTest("a local_proxy config that cannot be written fails the primary's start", async () => {
    const host = await makeFakeHost();
    // A directory where the file should be: every write fails.
    await mkdir(host.path("/etc/local_proxy/config.json"));
    const s = await start({
      skipCatalogUpdates: false,
      spec: { local_proxy_config: LOCAL_PROXY },
      env: host.env,
    });
    const st = await waitStatus(s, "failed");
    expect(st.error).toContain("apply_config local_proxy");
    expect(st.error).toContain("could not write");
    expect(s.compute.stderr.text).toContain("error while configuring local_proxy");
    expect(await s.compute.exited).toBe(1);
    expect((await statusOf(s).catch(() => null)) === null).toBe(true);
    await s.stack.stop();
  });
});
