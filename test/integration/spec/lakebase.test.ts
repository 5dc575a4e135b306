// Lakebase mode's spec application on a real Postgres 15, through the lifecycle's entry point:
// the Databricks roles, the readers' statement timeout, the auth extension, the grants and misc
// objects, the privileged role without REPLICATION, the migrations' role rename, and the
// statement-timeout counter (each apply statement cancelled with SQLSTATE 57014, lakebase only).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decode } from "../../../src/api/decode.ts";
import type { ParsedSpec } from "../../../src/api/parsed-spec.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { applySpec, LAKEBASE_START_OPTIONS } from "../../../src/compute/apply.ts";
import type { ComputeEnv } from "../../../src/compute/env.ts";
import { createMetrics } from "../../../src/metrics/registry.ts";
import { localClient } from "../../../src/postgres/client.ts";
import { installDatabricksAuthStub } from "../../support/databricks-stub.ts";
import { installNeonStub } from "../../support/neon-stub.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { cleanup, waitFor } from "../../support/proc.ts";

const stubs = [installNeonStub(), installDatabricksAuthStub()];
const missing = stubs.find((s) => !s.installed);
if (missing && !missing.installed) console.warn(`skipping lakebase apply tests: ${missing.reason}`);
const it = missing ? test.skip : test;

const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";
const PRIV = "databricks_superuser";

let pg: TestPostgres;
const q = (text: string) => pg.psql(text).then((s) => s.trim());

function env(lakebase: boolean, metrics = createMetrics()): ComputeEnv {
  return {
    params: { connstr: new URL(pg.url), privilegedRoleName: PRIV, lakebaseMode: lakebase },
    metrics,
  } as unknown as ComputeEnv;
}

function pspec(roles: { name: string }[] = []): ParsedSpec {
  const spec = decode(ComputeSpec, {
    format_version: 1.0,
    suspend_timeout_seconds: -1,
    cluster: {
      roles: roles.map((r) => ({ name: r.name, encrypted_password: null })),
      databases: [],
    },
  });
  return { spec, timelineId: TIMELINE } as unknown as ParsedSpec;
}

beforeAll(async () => {
  pg = await startTestPostgres();
  // What Neon's own extension provides and the Databricks grants name.
  await pg.psqlScript(`
    CREATE SCHEMA neon;
    CREATE FUNCTION neon.get_perf_counters() RETURNS TABLE (metric text, value float8)
      LANGUAGE sql AS 'SELECT ''x''::text, 0::float8';
    CREATE VIEW neon.neon_perf_counters AS SELECT * FROM neon.get_perf_counters();
    CREATE ROLE databricks_reader_7;
    CREATE ROLE databricks_reader_x;
    ALTER DATABASE postgres SET databricks.reader_statement_timeout = '5s';
  `);
}, 60_000);
afterAll(async () => {
  await pg?.stop();
  await cleanup();
});

describe("lakebase apply", () => {
  it("a start's connections: statement_timeout 2min after the forced options, which stay", async () => {
    const sql = localClient(new URL(pg.url), {
      applicationName: "compute_ctl:apply_config",
      extraOptions: LAKEBASE_START_OPTIONS,
    });
    try {
      const [row] = await sql.unsafe(
        "SELECT current_setting('statement_timeout') AS t, current_setting('search_path') AS p, current_setting('default_transaction_read_only') AS r",
      );
      expect({ ...row }).toEqual({ t: "2min", p: "''", r: "off" });
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it("creates the Databricks objects; migrations name databricks_superuser", async () => {
    await applySpec(env(true), pspec([{ name: "app_user" }]), "start");

    expect(
      await q(
        "SELECT rolname, rolsuper, rolcanlogin FROM pg_roles WHERE rolname LIKE 'databricks\\_%' AND rolname NOT LIKE 'databricks_reader%' ORDER BY 1",
      ),
    ).toBe(
      [
        "databricks_control_plane|t|t",
        "databricks_gateway|f|t",
        "databricks_monitor|f|t",
        "databricks_superuser|f|f",
      ].join("\n"),
    );
    expect(await q("SELECT pg_has_role('databricks_monitor', 'pg_monitor', 'MEMBER')")).toBe("t");
    expect(await q("SELECT rolconfig FROM pg_roles WHERE rolname = 'databricks_monitor'")).toBe(
      "{statement_timeout=60s}",
    );
    // Only databricks_reader_<digits> get the GUC's timeout.
    expect(
      await q(
        "SELECT rolname || ' ' || coalesce(rolconfig::text, '-') FROM pg_roles WHERE rolname LIKE 'databricks_reader%' ORDER BY 1",
      ),
    ).toBe("databricks_reader_7 {statement_timeout=5s}\ndatabricks_reader_x -");
    // No REPLICATION for the privileged role.
    expect(
      await q("SELECT rolreplication FROM pg_roles WHERE rolname = 'databricks_superuser'"),
    ).toBe("f");
    expect(await q("SELECT extname FROM pg_extension WHERE extname = 'databricks_auth'")).toBe(
      "databricks_auth",
    );
    expect(
      await q("SELECT has_table_privilege('pg_monitor', 'databricks_auth_metrics', 'SELECT')"),
    ).toBe("t");
    expect(
      await q(
        "SELECT has_schema_privilege('databricks_monitor', 'neon', 'USAGE'), has_table_privilege('databricks_monitor', 'public.health_check', 'INSERT'), has_function_privilege('databricks_monitor', 'pg_ls_dir(text)', 'EXECUTE'), has_table_privilege('databricks_monitor', 'neon.neon_perf_counters', 'SELECT')",
      ),
    ).toBe("t|t|t|t");
    expect(await q("SELECT health_check_write_succeeds()")).toBe("1");

    // The migrations run in the background with the lakebase names.
    const deadline = Date.now() + 15_000;
    let id = "";
    while (Date.now() < deadline) {
      id = await q("SELECT id FROM neon_migration.migration_id").catch(() => "");
      if (id === "12") break;
      await Bun.sleep(100);
    }
    expect(id).toBe("12");
    expect(
      await q("SELECT rolbypassrls FROM pg_roles WHERE rolname = 'databricks_superuser'"),
    ).toBe("t");
    expect(await q("SELECT count(*) FROM pg_roles WHERE rolname = 'neon_superuser'")).toBe("0");

    // A second apply is a no-op for the Databricks roles (created only when missing).
    await applySpec(env(true), pspec([{ name: "app_user" }]), "reconfigure");
  }, 60_000);

  for (const lakebase of [true, false]) {
    it(`a cancelled statement (57014) ${lakebase ? "counts once" : "does not count"}`, async () => {
      const metrics = createMetrics();
      // An uncommitted CREATE ROLE of the same name (held by a psql session) makes the apply's
      // CREATE ROLE wait.
      const role = `blocked_${lakebase}`;
      const holder = Bun.spawn(
        [
          "/usr/lib/postgresql/15/bin/psql",
          "-X",
          pg.url,
          "-c",
          `BEGIN; CREATE ROLE ${role}; SELECT pg_sleep(60);`,
        ],
        { stdout: "ignore", stderr: "ignore" },
      );
      try {
        await waitFor(
          async () =>
            (await q(
              `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'BEGIN; CREATE ROLE ${role};%' AND state = 'active'`,
            )) === "1",
          { what: "the holding transaction" },
        );
        const settled = applySpec(
          env(lakebase, metrics),
          pspec([{ name: role }]),
          "reconfigure",
        ).then(
          () => null,
          (err: unknown) => err as Error,
        );
        // Cancel the waiting statement, as a statement timeout would.
        await waitFor(
          async () =>
            (await q(
              "SELECT coalesce(bool_or(pg_cancel_backend(pid)), false) FROM pg_stat_activity WHERE application_name = 'compute_ctl:apply_config' AND wait_event_type = 'Lock'",
            )) === "t",
          { what: "the apply waiting on the lock" },
        );
        const err = await settled;
        expect(String(err?.message)).toContain("canceling statement due to user request");
      } finally {
        await q(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; CREATE ROLE ${role};%'`,
        );
        holder.kill("SIGKILL");
        await holder.exited;
      }
      const value = (await metrics.configureStatementTimeoutErrors.get()).values[0]?.value;
      expect(value).toBe(lakebase ? 1 : 0);
    }, 30_000);
  }
});
