// TLS through the compiled binary: the start waits (answering signals) until the key matches an
// ECDSA P-256 certificate, then Postgres serves TLS with the pair; a renewal while running
// reconfigures once (Postgres reload, pgbouncer, local_proxy) through configuration_pending.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { p256Pair, rsaPair, writePair } from "../support/certs.ts";
import { makeFakeHost } from "../support/host.ts";
import { startFakeLocalProxy } from "../support/local-proxy.ts";
import { startPgbouncer } from "../support/pgbouncer.ts";
import { cleanup, makeUserDir, waitFor } from "../support/proc.ts";
import { startWith } from "../support/sidecars.ts";
import { statusOf, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(120_000);
afterAll(cleanup);

const statusChanges = (text: string) =>
  text
    .split("\n")
    .filter((l) => l.includes("Changing compute status from"))
    .map((l) => l.slice(l.indexOf("from ") + 5));

async function psqlSsl(port: number, sslmode: string): Promise<string> {
  const p = Bun.spawn(
    [
      "psql",
      "-X",
      "-At",
      `host=127.0.0.1 port=${port} user=cloud_admin dbname=postgres sslmode=${sslmode}`,
      "-c",
      "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, err] = [await new Response(p.stdout).text(), await new Response(p.stderr).text()];
  if ((await p.exited) !== 0) throw new Error(`psql: ${err}`);
  return out.trim();
}

describe("TLS", () => {
  test("a mismatched pair holds the start; the matching pair starts it; a renewal reconfigures once", async () => {
    const host = await makeFakeHost();
    const certs = await makeUserDir("certs-");
    const first = await p256Pair("first.local");
    const other = await p256Pair("other.local");
    // The key of another certificate: the start must wait.
    const tls = await writePair(certs, { key: other.key, cert: first.cert });
    const pgb = await startPgbouncer({
      dir: host.path("/tmp"),
      iniPath: host.path("/var/db/postgres/pgbouncer/pgbouncer.ini"),
    });
    const lp = await startFakeLocalProxy(host.path("/etc/local_proxy/pid"));
    const s = await startWith({
      spec: {
        features: ["tls_experimental"],
        pgbouncer_settings: { default_pool_size: "11" },
        local_proxy_config: { jwks: [] },
      },
      computeCtlConfig: { tls },
      env: {
        ...host.env,
        COMPUTE_CTL_TESTING_PGBOUNCER_PORT: String(pgb.port),
        COMPUTE_CTL_TESTING_TLS_POLL_MS: "300",
      },
    });
    await waitFor(
      () => s.compute.stderr.text.includes("private key file does not match certificate"),
      {
        what: "the mismatch in the log",
        timeoutMs: 30_000,
      },
    );
    await Bun.sleep(2500);
    expect((await statusOf(s)).status).toBe("init");
    expect(await Bun.file(join(s.stack.pgdata, "postmaster.pid")).exists()).toBe(false);

    await writePair(certs, first);
    await waitStatus(s, "running", 30_000);
    const pgdata = s.stack.pgdata;
    expect(await readFile(join(pgdata, "server.crt"), "utf8")).toBe(first.cert);
    expect((await stat(join(pgdata, "server.key"))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(pgdata, "postgresql.conf"), "utf8")).toContain("ssl = on");
    expect(await psqlSsl(s.stack.pgPort, "require")).toBe("t");
    // pgbouncer got the key files; local_proxy its TLS paths and one SIGHUP.
    await waitFor(async () => (await pgb.show("client_tls_sslmode")) === "allow", {
      what: "pgbouncer's client_tls_sslmode",
      timeoutMs: 15_000,
    });
    await waitFor(async () => (await lp.hups()) === 1, { what: "one SIGHUP", timeoutMs: 10_000 });
    expect(
      JSON.parse(await readFile(host.path("/etc/local_proxy/config.json"), "utf8")).tls,
    ).toEqual(tls);
    // No reconfigure without a renewal.
    await Bun.sleep(1000);
    expect(statusChanges(s.compute.stderr.text)).not.toContain("running to configuration-pending");

    // The renewal: a new pair in place.
    const renewed = await p256Pair("renewed.local");
    await writePair(certs, renewed);
    await waitFor(
      async () => (await readFile(join(pgdata, "server.crt"), "utf8")) === renewed.cert,
      {
        what: "the renewed certificate in PGDATA",
        timeoutMs: 15_000,
      },
    );
    await waitStatus(s, "running");
    await waitFor(async () => (await lp.hups()) === 2, {
      what: "a second SIGHUP",
      timeoutMs: 10_000,
    });
    await Bun.sleep(1500);
    const changes = statusChanges(s.compute.stderr.text);
    expect(changes.filter((c) => c === "running to configuration-pending")).toHaveLength(1);
    expect(changes.slice(-3)).toEqual([
      "running to configuration-pending",
      "configuration-pending to configuration",
      "configuration to running",
    ]);
    expect(s.compute.stderr.text.match(/TLS certificate renewed/g)).toHaveLength(1);
    expect(await lp.hups()).toBe(2);
    expect(await psqlSsl(s.stack.pgPort, "require")).toBe("t");
    expect((await terminate(s, "immediate")).code).toBe(200);
    await s.compute.exited;
    await s.stack.stop();
  });

  test("an RSA pair holds the start, which still ends at once on SIGTERM", async () => {
    const certs = await makeUserDir("certs-");
    const tls = await writePair(certs, await rsaPair());
    const host = await makeFakeHost();
    const s = await startWith({
      spec: { features: ["tls_experimental"] },
      computeCtlConfig: { tls },
      env: host.env,
    });
    await waitFor(() => s.compute.stderr.text.includes("unknown TLS key type"), {
      what: "the refusal in the log",
      timeoutMs: 30_000,
    });
    expect((await statusOf(s)).status).toBe("init");
    const t0 = performance.now();
    s.compute.proc.kill("SIGTERM");
    expect(await s.compute.exited).toBe(1);
    expect(performance.now() - t0).toBeLessThan(5000);
    await s.stack.stop();
  });
});
