// configureLocalProxy: the config file byte for byte, and SIGHUP only to a process that holds the
// pid file's flock (the fake local_proxy counts them).
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { configureLocalProxy, localProxyConfigText } from "../../../src/sidecars/local-proxy.ts";
import { readPidFile } from "../../../src/sidecars/pid-file.ts";
import { startFakeLocalProxy } from "../../support/local-proxy.ts";
import { cleanup, makeUserDir, waitFor } from "../../support/proc.ts";

setDefaultTimeout(30_000);
afterAll(cleanup);

const JWKS = [
  {
    id: "neon-auth",
    role_names: ["authenticated", "anonymous"],
    jwks_url: "https://auth.example/.well-known/jwks.json",
    provider_name: 'Neon "Auth"',
    jwt_audience: null,
  },
  { id: "b", role_names: [], jwks_url: "u", provider_name: "p", jwt_audience: "aud" },
];

describe("local_proxy config.json", () => {
  test("pretty JSON as serde_json writes it: two spaces, nulls kept inside, no newline at the end", () => {
    expect(
      localProxyConfigText({ jwks: JWKS, tls: null }, { key_path: "/k", cert_path: "/c" }),
    ).toBe(
      `{
  "jwks": [
    {
      "id": "neon-auth",
      "role_names": [
        "authenticated",
        "anonymous"
      ],
      "jwks_url": "https://auth.example/.well-known/jwks.json",
      "provider_name": "Neon \\"Auth\\"",
      "jwt_audience": null
    },
    {
      "id": "b",
      "role_names": [],
      "jwks_url": "u",
      "provider_name": "p",
      "jwt_audience": "aud"
    }
  ],
  "tls": {
    "key_path": "/k",
    "cert_path": "/c"
  }
}`,
    );
  });

  test("absent jwks and tls are left out; the spec's own tls is replaced", () => {
    expect(localProxyConfigText({ jwks: null, tls: null }, null)).toBe("{}");
    expect(
      localProxyConfigText({ jwks: [], tls: { key_path: "/spec", cert_path: "/spec" } }, null),
    ).toBe('{\n  "jwks": []\n}');
  });
});

describe("notifying local_proxy", () => {
  test("a locked pid file: one SIGHUP per configure", async () => {
    const dir = await makeUserDir("lp-");
    const paths = { config: join(dir, "config.json"), pid: join(dir, "pid") };
    const lp = await startFakeLocalProxy(paths.pid);
    expect(await readPidFile(paths.pid)).toEqual({
      kind: "locked",
      content: String(lp.proc.pid),
      pid: lp.proc.pid,
    });
    expect(await configureLocalProxy({ jwks: JWKS, tls: null }, null, paths)).toBe(true);
    await waitFor(async () => (await lp.hups()) === 1, { what: "one SIGHUP", timeoutMs: 5000 });
    expect(JSON.parse(await readFile(paths.config, "utf8")).jwks).toHaveLength(2);
    expect(await configureLocalProxy({ jwks: null, tls: null }, null, paths)).toBe(true);
    await waitFor(async () => (await lp.hups()) === 2, { what: "two SIGHUPs", timeoutMs: 5000 });
    await Bun.sleep(200);
    expect(await lp.hups()).toBe(2);
    await lp.stop();
    // Its process is gone, so is the lock: the file is left but nobody is signalled.
    expect((await readPidFile(paths.pid)).kind).toBe("unlocked");
    expect(await configureLocalProxy({ jwks: null, tls: null }, null, paths)).toBe(false);
  });

  test("an unlocked pid file naming a live process: no signal; a missing one: no signal", async () => {
    const dir = await makeUserDir("lp-");
    const paths = { config: join(dir, "config.json"), pid: join(dir, "pid") };
    expect(await configureLocalProxy({ jwks: null, tls: null }, null, paths)).toBe(false);
    expect(await readFile(paths.config, "utf8")).toBe("{}");
    // A pid file that names this very test process but is not locked: nobody is signalled.
    let hup = 0;
    const onHup = () => hup++;
    process.on("SIGHUP", onHup);
    await writeFile(paths.pid, String(process.pid));
    expect(await readPidFile(paths.pid)).toEqual({
      kind: "unlocked",
      content: String(process.pid),
    });
    expect(await configureLocalProxy({ jwks: null, tls: null }, null, paths)).toBe(false);
    await Bun.sleep(200);
    process.off("SIGHUP", onHup);
    expect(hup).toBe(0);
  });

  test("an unwritable config directory is an error", async () => {
    await expect(
      configureLocalProxy({ jwks: null, tls: null }, null, {
        config: "/nonexistent-dir/config.json",
        pid: "/nonexistent-dir/pid",
      }),
    ).rejects.toThrow("could not write /nonexistent-dir/config.json");
  });
});
