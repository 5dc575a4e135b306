// Migrations against a real Postgres 15: post-conditions, the recorded id, failure and resume.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { createMetrics, exposition } from "../../../src/metrics/registry.ts";
import { localClient } from "../../../src/postgres/client.ts";
import {
  currentMigrationId,
  renderMigrations,
  runMigrations,
} from "../../../src/spec/migrations.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { cleanup } from "../../support/proc.ts";

let pg: TestPostgres;
let sql: Sql;
const q = (text: string) => pg.psql(text).then((s) => s.trim());

beforeAll(async () => {
  pg = await startTestPostgres();
  sql = localClient(new URL(pg.url), { applicationName: "compute_ctl:migrations" });
  // What the apply creates before migrations run; a stray role with BYPASSRLS to be repaired.
  await q(
    "CREATE ROLE my_superuser CREATEDB CREATEROLE NOLOGIN REPLICATION IN ROLE pg_read_all_data, pg_write_all_data",
  );
  await q("CREATE ROLE member_role NOINHERIT IN ROLE my_superuser");
  await q("CREATE ROLE leaked BYPASSRLS");
});
afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await pg?.stop();
  await cleanup();
});

describe("migrations", () => {
  test("a failure at N leaves N-1, is counted, and the next run resumes", async () => {
    const metrics = createMetrics();
    const migrations = renderMigrations("my_superuser");
    const failing = runMigrations(sql, {
      migrations,
      failAt: (id) => id === 4,
      onFailure: (id) => metrics.migrationFailed.inc({ migration_id: String(id) }),
    });
    await expect(failing).rejects.toThrow("migration 4 failed");
    expect(await currentMigrationId(sql)).toBe(3);
    // Migration 4's grant rolled back with its id bump.
    expect(await q("SELECT pg_has_role('my_superuser', 'pg_monitor', 'member')")).toBe("f");
    expect(await exposition(metrics.registry)).toContain(
      'compute_ctl_db_migration_failed_total{migration_id="4"} 1',
    );

    expect(await runMigrations(sql, { migrations })).toBe(12);
    expect(await currentMigrationId(sql)).toBe(12);
    // Idempotent: nothing left to run.
    expect(await runMigrations(sql, { migrations })).toBe(12);
  }, 60_000);

  test("post-conditions of migrations 1, 2, 4, 11 and 12 (3 and 10 are PG16-only no-ops)", async () => {
    expect(await q("SELECT rolbypassrls FROM pg_roles WHERE rolname = 'my_superuser'")).toBe("t");
    expect(await q("SELECT rolinherit FROM pg_roles WHERE rolname = 'member_role'")).toBe("t");
    expect(await q("SELECT rolbypassrls FROM pg_roles WHERE rolname = 'leaked'")).toBe("f");
    expect(
      await q(
        "SELECT admin_option FROM pg_auth_members WHERE roleid = 'pg_monitor'::regrole AND member = 'my_superuser'::regrole",
      ),
    ).toBe("t");
    expect(
      await q(
        "SELECT admin_option FROM pg_auth_members WHERE roleid = 'pg_signal_backend'::regrole AND member = 'my_superuser'::regrole",
      ),
    ).toBe("t");
    expect(
      await q(
        "SELECT has_function_privilege('my_superuser', 'pg_show_replication_origin_status()', 'EXECUTE')",
      ),
    ).toBe("t");
    // Not granted the dangerous predefined roles.
    for (const r of [
      "pg_execute_server_program",
      "pg_read_server_files",
      "pg_write_server_files",
      "pg_checkpoint",
    ]) {
      expect(await q(`SELECT pg_has_role('my_superuser', '${r}', 'member')`)).toBe("f");
    }
    expect(await q("SELECT has_schema_privilege('public', 'neon_migration', 'USAGE')")).toBe("f");
    expect(
      await q(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'neon_migration'",
      ),
    ).toBe("cloud_admin");
  });

  test("the list is the reference's: 12 entries, 5-9 skipped", () => {
    const m = renderMigrations("neon_superuser");
    expect(m).toHaveLength(12);
    expect(m.map((t, i) => (t.startsWith("-- SKIP") ? i + 1 : 0)).filter(Boolean)).toEqual([
      5, 6, 7, 8, 9,
    ]);
    expect(() => renderMigrations("Bad-Name")).toThrow();
  });
});
