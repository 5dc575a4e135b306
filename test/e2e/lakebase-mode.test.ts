// Lakebase mode through the compiled binary on real Postgres 15: the port and Databricks block in
// postgresql.conf, the Databricks PGDATA files and environment, pg_cctl_attached, the liveness
// probe, the daily JSON log file, /refresh_configuration re-reading the -c file, and the
// start-up guard.
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { jsonOf, type RunningCompute, startCompute, writeUserFile } from "../support/compute.ts";
import { processesUsing } from "../support/leftovers.ts";
import { cleanup, makeUserDir, waitFor } from "../support/proc.ts";
import { startLocalStack, TENANT, TIMELINE } from "../support/stack.ts";
import { expectNothingLeft, FAST, psql, type Started, terminate } from "../support/started.ts";

afterAll(cleanup);

type Stack = Awaited<ReturnType<typeof startLocalStack>>;

/** The stack's spec without its `port` setting: in lakebase mode the port comes from the connstr. */
function lakebaseSpec(stack: Stack, extra: Record<string, unknown> = {}) {
  const spec = structuredClone(stack.spec) as Record<string, unknown> & {
    cluster: { settings: { name: string }[] };
  };
  spec.cluster.settings = spec.cluster.settings.filter((s) => s.name !== "port");
  return { ...spec, ...extra };
}

async function status(c: RunningCompute): Promise<string> {
  return (await jsonOf(c.get("/status"))).status;
}

async function waitStatus(c: RunningCompute, want: string, timeoutMs = 30_000) {
  await waitFor(async () => (await status(c)) === want, { what: `status ${want}`, timeoutMs });
}

function metricLines(text: string, name: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe("a lakebase compute", () => {
  test("databricks_settings: TLS files and pg_hba/pg_ident includes (which Postgres 15 refuses)", async () => {
    const stack = await startLocalStack({ safekeepers: "agree" });
    const files = await makeUserDir("databricks-");
    const hba = join(files, "databricks_pg_hba.conf");
    const ident = join(files, "databricks_pg_ident.conf");
    await writeUserFile(hba, "# no extra rules\n");
    await writeUserFile(ident, "# no maps\n");
    await writeUserFile(join(files, "server.crt"), "not really a certificate\n");
    await writeUserFile(join(files, "server.key"), "not really a key\n");
    const databricks = {
      pg_compute_tls_settings: {
        cert_file: join(files, "server.crt"),
        key_file: join(files, "server.key"),
        ca_file: join(files, "ca.crt"),
      },
      databricks_pg_hba: hba,
      databricks_pg_ident: ident,
      databricks_workspace_host: "ws.example.com",
    };
    const c = await startCompute({
      config: {
        spec: lakebaseSpec(stack, { databricks_settings: databricks }),
        compute_ctl_config: { jwks: { keys: [] } },
      },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata: stack.pgdata,
      args: ["--lakebase-mode", "true"],
      env: { ...FAST, INSTANCE_ID: "inst-1" },
    });
    try {
      // pg_hba.conf's include directives are Postgres 16+: Postgres 15 stops, the start fails.
      expect(await c.exited).toBe(1);
      expect(c.stderr.text).toContain('invalid connection type "include_if_exists"');

      const conf = readFileSync(join(stack.pgdata, "postgresql.conf"), "utf8");
      expect(conf).toContain(
        `port = ${stack.pgPort}\n# Databricks settings start\nssl_ca_file = '${databricks.pg_compute_tls_settings.ca_file}'\ndatabricks.workspace_url = 'ws.example.com'\ndatabricks.enable_databricks_identity_login = true\ndatabricks.enable_sql_restrictions = true\n\n# Databricks settings end\ninclude_if_exists = 'compute_ctl_temp_override.conf'\n`,
      );
      // The include comes before the md5 line (Postgres uses the first matching record).
      const pgHba = readFileSync(join(stack.pgdata, "pg_hba.conf"), "utf8");
      const include = pgHba.indexOf(`\ninclude_if_exists ${hba}\n`);
      expect(include).toBeGreaterThan(0);
      expect(pgHba.indexOf("host\tall\t\tall\t\tall\t\tmd5")).toBeGreaterThan(include);
      expect(readFileSync(join(stack.pgdata, "pg_ident.conf"), "utf8")).toContain(
        `include_if_exists ${ident}\n`,
      );
      // The TLS files under their own names, the key private to its owner.
      expect(readFileSync(join(stack.pgdata, "server.crt"), "utf8")).toBe(
        "not really a certificate\n",
      );
      expect(statSync(join(stack.pgdata, "server.key")).mode & 0o777).toBe(0o600);
    } finally {
      c.proc.kill("SIGKILL");
      await stack.stop();
    }
  }, 60_000);

  test("conf, environment, metrics, probe, file logs and refreshes", async () => {
    const stack = await startLocalStack({ safekeepers: "agree" });
    const logs = join(await makeUserDir("lakebase-logs-"), "logs");
    const c = await startCompute({
      config: { spec: lakebaseSpec(stack), compute_ctl_config: { jwks: { keys: [] } } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata: stack.pgdata,
      args: ["--lakebase-mode", "true"],
      env: {
        ...FAST,
        INSTANCE_ID: "inst-1",
        COMPUTE_CTL_LOG_DIRECTORY: logs,
        // pg_isready -p <port> looks for the socket where PGHOST says, as in the reference.
        PGHOST: stack.socketDir,
      },
    });
    const s: Started = { stack, compute: c, key: null as never, token: "" };
    try {
      await waitStatus(c, "running");

      // postgresql.conf: the connstr's port (nothing else names one) and the block's markers.
      const conf = readFileSync(join(stack.pgdata, "postgresql.conf"), "utf8");
      expect(conf).toContain(
        `port = ${stack.pgPort}\n# Databricks settings start\n# Databricks settings end\ninclude_if_exists = 'compute_ctl_temp_override.conf'\n`,
      );
      expect(await psql(s, "SHOW port")).toBe(String(stack.pgPort));

      // Postgres's environment.
      const pid = readFileSync(join(stack.pgdata, "postmaster.pid"), "utf8").split("\n")[0];
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      expect(environ).toContain("DATABRICKS_ENDPOINT_ID=inst-1");
      expect(environ).toContain("DATABRICKS_WORKSPACE_HOST=");

      // Metrics: attached, nothing refreshed yet.
      let metrics = await (await c.get("/metrics")).text();
      expect(metricLines(metrics, "pg_cctl_attached")).toEqual([
        `pg_cctl_attached{pg_compute_id="${c.computeId}",pg_instance_id="inst-1",tenant_id="${TENANT}",timeline_id="${TIMELINE}"} 1`,
      ]);
      expect(metricLines(metrics, "pg_cctl_pagestream_request_errors_total")).toEqual([
        "pg_cctl_pagestream_request_errors_total 0",
      ]);

      // The liveness probe (INSTANCE_ID: no token needed).
      const probe = await c.get("/hadron_liveness_probe");
      expect(probe.status).toBe(200);
      expect(await probe.text()).toBe('"ok"');

      // Refresh with the same file: same pageservers, back to running.
      const configPath = join(c.dir, "config.json");
      expect((await c.post("internal:/refresh_configuration")).status).toBe(200);
      await waitFor(
        () => c.stderr.text.includes("Retrieved spec is the same as the current spec"),
        {
          what: "the unchanged refresh",
        },
      );
      await waitStatus(c, "running");
      expect(c.stderr.text).toContain(
        "Changing compute status from running to refresh-configuration-pending",
      );
      expect(c.stderr.text).toContain(
        "Changing compute status from refresh-configuration to running",
      );

      // A broken file: the refresh goes back to pending and retries 5 s later.
      await writeUserFile(configPath, "{ not json");
      // Within the 5 s pause after the unchanged refresh, this request is picked up after it.
      expect((await c.post("internal:/refresh_configuration")).status).toBe(200);
      await waitFor(
        () => c.stderr.text.includes("Refresh configuration: error getting a parsed spec"),
        { what: "the failed refresh", timeoutMs: 15_000 },
      );
      expect(await status(c)).toBe("refresh_configuration_pending");
      // Moved pageservers this time: the retry reconfigures.
      const moved = lakebaseSpec(stack, {
        pageserver_connstring: stack.pageserver.url.replace("no_user@", "moved@"),
      });
      await writeUserFile(
        configPath,
        JSON.stringify({ spec: moved, compute_ctl_config: { jwks: { keys: [] } } }),
      );
      await waitFor(
        () => c.stderr.text.includes("Refresh configuration: compute node configured"),
        { what: "the retried refresh", timeoutMs: 15_000 },
      );
      await waitStatus(c, "running");
      expect(readFileSync(join(stack.pgdata, "postgresql.conf"), "utf8")).toContain("moved@");
      metrics = await (await c.get("/metrics")).text();
      expect(metricLines(metrics, "pg_cctl_pagestream_request_errors_total")).toEqual([
        "pg_cctl_pagestream_request_errors_total 2",
      ]);

      // The daily JSON log file, beside stderr.
      const day = new Date().toISOString().slice(0, 10);
      expect(readdirSync(logs)).toContain(`pgcctl.${day}`);
      const lines = readFileSync(join(logs, `pgcctl.${day}`), "utf8")
        .trim()
        .split("\n");
      const parsed = lines.map((l) => JSON.parse(l) as Record<string, string>);
      expect(Object.keys(parsed[0] as object)).toEqual([
        "timestamp",
        "error_severity",
        "file_name",
        "backend_type",
        "pg_instance_id",
        "pg_compute_id",
        "message",
      ]);
      expect(lines[0]).toMatch(
        /^\{"timestamp": "\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} GMT", "error_severity": "INFO", /,
      );
      const running = parsed.find(
        (p) => p.message === "Changing compute status from init to running",
      );
      expect(running).toMatchObject({
        backend_type: "compute_ctl_self",
        pg_instance_id: "inst-1",
        pg_compute_id: c.computeId,
      });

      // /terminate on a running lakebase compute is the usual one.
      const t = await terminate(s, "immediate");
      expect(t.code).toBe(200);
      expect(await c.exited).toBe(0);
      await expectNothingLeft(s);
    } catch (err) {
      throw new Error(`${String(err)}\ncompute_ctl's stderr:\n${c.stderr.text.slice(-4000)}`);
    } finally {
      c.proc.kill("SIGKILL");
      await stack.stop();
    }
  }, 90_000);

  test("not running within --pg-init-timeout: exit 1, Postgres stopped", async () => {
    const stack = await startLocalStack({ safekeepers: "agree", startDelayMs: 20_000 });
    const c = await startCompute({
      config: { spec: lakebaseSpec(stack), compute_ctl_config: { jwks: { keys: [] } } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata: stack.pgdata,
      args: ["--lakebase-mode", "true", "--pg-init-timeout", "2"],
      env: { ...FAST, COMPUTE_CTL_TESTING_CHILD_GRACE_MS: "1000" },
    });
    try {
      const t0 = performance.now();
      const code = await c.exited;
      const ms = performance.now() - t0;
      expect(code).toBe(1);
      expect(ms).toBeLessThan(8_000);
      expect(c.stderr.text).toContain("compute did not enter Running state in 2 seconds, exiting");
      await waitFor(() => processesUsing(stack.pgdata).length === 0, {
        what: "no process left",
        timeoutMs: 5_000,
      });
    } finally {
      c.proc.kill("SIGKILL");
      await stack.stop();
    }
  }, 60_000);
});

describe("with lakebase mode off", () => {
  test("no lakebase conf or metric; /refresh_configuration is served and counted, as in the reference", async () => {
    const stack = await startLocalStack({ safekeepers: "agree" });
    const c = await startCompute({
      config: { spec: stack.spec, compute_ctl_config: { jwks: { keys: [] } } },
      connstr: stack.connstr,
      pgbin: stack.pgbin.pgbin,
      pgdata: stack.pgdata,
      env: { ...FAST, INSTANCE_ID: "inst-1" },
    });
    const s: Started = { stack, compute: c, key: null as never, token: "" };
    try {
      await waitStatus(c, "running");
      expect(readFileSync(join(stack.pgdata, "postgresql.conf"), "utf8")).not.toContain(
        "# Databricks settings start",
      );
      const pid = readFileSync(join(stack.pgdata, "postmaster.pid"), "utf8").split("\n")[0];
      const environ = readFileSync(`/proc/${pid}/environ`, "utf8");
      expect(environ).not.toContain("DATABRICKS_ENDPOINT_ID=");

      expect((await c.post("internal:/refresh_configuration")).status).toBe(200);
      await waitFor(
        () => c.stderr.text.includes("Retrieved spec is the same as the current spec"),
        {
          what: "the unchanged refresh",
        },
      );
      await waitStatus(c, "running");
      const metrics = await (await c.get("/metrics")).text();
      expect(metricLines(metrics, "pg_cctl_pagestream_request_errors_total")).toEqual([
        "pg_cctl_pagestream_request_errors_total 1",
      ]);
      expect(metricLines(metrics, "pg_cctl_attached")).toEqual([]);
      expect(metricLines(metrics, "compute_ctl_up")).toEqual([
        'compute_ctl_up{build_tag="latest",status="running"} 1',
      ]);
      expect(await terminate(s, "immediate")).toEqual({
        code: 200,
        body: { lsn: expect.any(String) },
      });
      expect(await c.exited).toBe(0);
    } finally {
      c.proc.kill("SIGKILL");
      await stack.stop();
    }
  }, 60_000);
});
