// tunePgbouncer against the real Debian pgbouncer run as postgres, over TCP as user postgres
// (the pod path; the NeonVM path over the Unix socket runs through the binary in e2e).
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { formatOneLine } from "../../../src/errors.ts";
import { type PgbouncerTarget, tunePgbouncer } from "../../../src/sidecars/pgbouncer.ts";
import { p256Pair, writePair } from "../../support/certs.ts";
import { startPgbouncer } from "../../support/pgbouncer.ts";
import { freePort } from "../../support/ports.ts";
import { cleanup, makeUserDir } from "../../support/proc.ts";

setDefaultTimeout(30_000);
afterAll(cleanup);

function tcpTarget(ini: string, port: number, password: string | null = null): PgbouncerTarget {
  return {
    iniPath: ini,
    admin: { host: "localhost", port, user: "postgres", database: "pgbouncer", password },
  };
}

describe("tunePgbouncer with the real pgbouncer", () => {
  test("settings land in [pgbouncer] and RELOAD applies them", async () => {
    const pgb = await startPgbouncer();
    expect(await pgb.show("default_pool_size")).toBe("64");
    await tunePgbouncer({
      settings: { default_pool_size: "17", max_client_conn: "123" },
      tls: null,
      target: tcpTarget(pgb.ini, pgb.port),
    });
    const ini = await readFile(pgb.ini, "utf8");
    expect(ini).toContain("\ndefault_pool_size=17\n");
    expect(ini).toContain("max_client_conn=123\n");
    expect(ini).not.toContain("default_pool_size = 64");
    expect(ini).toContain("; the admin console's users\n");
    expect(await pgb.show("default_pool_size")).toBe("17");
    expect(await pgb.show("max_client_conn")).toBe("123");
    await pgb.stop();
  });

  test("PGBOUNCER_PASSWORD: the password is sent; without it the console refuses", async () => {
    const pgb = await startPgbouncer({ password: "s3cret" });
    const err = await tunePgbouncer({
      settings: { default_pool_size: "5" },
      tls: null,
      target: tcpTarget(pgb.ini, pgb.port),
      attempts: 1,
    }).catch((e) => e);
    expect(formatOneLine(err)).toMatch(/admin console after 1 attempts: .*password/);
    await tunePgbouncer({
      settings: { default_pool_size: "5" },
      tls: null,
      target: tcpTarget(pgb.ini, pgb.port, "s3cret"),
    });
    expect(await pgb.show("default_pool_size")).toBe("5");
    await pgb.stop();
  });

  test("with TLS the tune waits for the key, then sets the client_tls_* keys", async () => {
    const pgb = await startPgbouncer();
    const certDir = await makeUserDir("tls-");
    const pair = await p256Pair();
    const key_path = join(certDir, "tls.key");
    const cert_path = join(certDir, "tls.crt");
    let done = false;
    const tuning = tunePgbouncer({
      settings: { default_pool_size: "9", client_tls_sslmode: "require" },
      tls: { key_path, cert_path },
      target: tcpTarget(pgb.ini, pgb.port),
      keyPollMs: 50,
    }).then(() => {
      done = true;
    });
    await Bun.sleep(700);
    expect(done).toBe(false);
    expect(await readFile(pgb.ini, "utf8")).not.toContain("default_pool_size=9");
    await writePair(certDir, pair);
    await tuning;
    const ini = await readFile(pgb.ini, "utf8");
    expect(ini).toContain(
      `client_tls_cert_file=${cert_path}\nclient_tls_key_file=${key_path}\nclient_tls_sslmode=allow\n`,
    );
    expect(ini).not.toContain("client_tls_sslmode=require");
    expect(await pgb.show("client_tls_sslmode")).toBe("allow");
    expect(await pgb.show("default_pool_size")).toBe("9");
    await pgb.stop();
  });

  test("pgbouncer not running: 4 attempts 1 s apart, then an error; the ini is untouched", async () => {
    const dir = await makeUserDir("pgb-absent-");
    const ini = join(dir, "pgbouncer.ini");
    await Bun.write(ini, "[pgbouncer]\nlisten_port=1\n");
    const t0 = performance.now();
    await expect(
      tunePgbouncer({
        settings: { default_pool_size: "1" },
        tls: null,
        target: tcpTarget(ini, await freePort()),
      }),
    ).rejects.toThrow("could not connect to the pgbouncer admin console after 4 attempts");
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(2900);
    expect(ms).toBeLessThan(10_000);
    expect(await readFile(ini, "utf8")).toBe("[pgbouncer]\nlisten_port=1\n");
  });

  test("an ini without [pgbouncer] is an error and is left as it was", async () => {
    const pgb = await startPgbouncer();
    const other = join(pgb.dir, "other.ini");
    await Bun.write(other, "[databases]\n");
    await expect(
      tunePgbouncer({ settings: { a: "b" }, tls: null, target: tcpTarget(other, pgb.port) }),
    ).rejects.toThrow("no [pgbouncer] section");
    expect(await readFile(other, "utf8")).toBe("[databases]\n");
    await pgb.stop();
  });
});
