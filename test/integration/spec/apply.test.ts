// Spec application against a real Postgres 15 (mirroring the reference's python tests). The `neon` extension is a SQL-only stub installed as root; without root these tests are
// skipped with the reason printed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Sql } from "postgres";
import { decode } from "../../../src/api/decode.ts";
import type { ParsedSpec } from "../../../src/api/parsed-spec.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { applySpec } from "../../../src/compute/apply.ts";
import type { ComputeEnv } from "../../../src/compute/env.ts";
import { createMetrics } from "../../../src/metrics/registry.ts";
import { applySpecSql, planSpecSql } from "../../../src/spec/apply.ts";
import { databaseClient } from "../../../src/spec/execute.ts";
import { installNeonStub } from "../../support/neon-stub.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { cleanup } from "../../support/proc.ts";
import { catalogSnapshot } from "./catalog-snapshot.ts";

const stub = installNeonStub();
if (!stub.installed) console.warn(`skipping spec integration tests: ${stub.reason}`);
const it = stub.installed ? test : test.skip;

const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";
const PRIV = "neon_superuser";

// biome-ignore lint/suspicious/noExplicitAny: test documents are free-form JSON.
type Json = any;

function spec(cluster: Json, patch: Json = {}): ComputeSpec {
  return decode(ComputeSpec, {
    format_version: 1.0,
    suspend_timeout_seconds: -1,
    cluster: { roles: [], databases: [], ...cluster },
    ...patch,
  });
}

let pg: TestPostgres;
const apply = (s: ComputeSpec, concurrency = 4, timelineId = TIMELINE) =>
  applySpecSql(s, { connstr: new URL(pg.url), privilegedRoleName: PRIV, timelineId, concurrency });
const q = (text: string, db = "postgres") => pg.psql(text, db).then((s) => s.trim());

beforeAll(async () => {
  pg = await startTestPostgres({ settings: { wal_level: "logical", max_wal_senders: "4" } });
  // Password logins for the password tests go through md5/SCRAM, everything else stays trust.
  const hba = join(pg.pgdata, "pg_hba.conf");
  writeFileSync(
    hba,
    `host all pw_md5,pw_scram,pw_renamed 127.0.0.1/32 md5\n${readFileSync(hba, "utf8")}`,
  );
  await pg.sql`SELECT pg_reload_conf()`;
});
afterAll(async () => {
  await pg?.stop();
  await cleanup();
});

function md5Hash(password: string, user: string): string {
  return new Bun.CryptoHasher("md5").update(password + user).digest("hex");
}

async function scramVerifier(password: string): Promise<string> {
  await pg.sql.unsafe(
    `SET password_encryption = 'scram-sha-256'; CREATE ROLE scram_tmp PASSWORD '${password}'`,
  );
  const [row] = await pg.sql`SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_tmp'`;
  await pg.sql`DROP ROLE scram_tmp`;
  return row!.rolpassword;
}

async function canLogin(user: string, password: string): Promise<boolean> {
  const { default: postgres } = await import("postgres");
  const c = postgres({
    host: "127.0.0.1",
    port: pg.port,
    user,
    password,
    database: "postgres",
    max: 1,
    connect_timeout: 5,
    onnotice: () => {},
  });
  try {
    await c`SELECT 1`;
    return true;
  } catch {
    return false;
  } finally {
    await c.end({ timeout: 1 });
  }
}

async function roleFlags(name: string) {
  const [r] = await pg.sql`
    SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,
      coalesce((SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m
                JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid), '') AS member_of
    FROM pg_roles r WHERE rolname = ${name}`;
  return r;
}

describe("roles and databases", () => {
  it("first apply: attributes, membership, JWKS roles plain, passwords, owners", async () => {
    const scram = await scramVerifier("scram-secret");
    const s = spec(
      {
        roles: [
          { name: "pw_md5", encrypted_password: md5Hash("md5-secret", "pw_md5") },
          { name: "pw_scram", encrypted_password: scram },
          { name: "jwt_user", encrypted_password: null },
          { name: "owner1", encrypted_password: null },
        ],
        databases: [{ name: "app1", owner: "owner1" }],
      },
      {
        local_proxy_config: {
          jwks: [
            {
              id: "a",
              role_names: ["jwt_user"],
              jwks_url: "https://x.invalid",
              provider_name: "p",
            },
          ],
        },
      },
    );
    await apply(s);

    expect(await roleFlags(PRIV)).toEqual({
      rolsuper: false,
      rolinherit: true,
      rolcreaterole: true,
      rolcreatedb: true,
      rolcanlogin: false,
      rolreplication: true,
      rolbypassrls: true,
      member_of: "pg_read_all_data,pg_write_all_data",
    });
    expect(await roleFlags("pw_md5")).toEqual({
      rolsuper: false,
      rolinherit: true,
      rolcreaterole: true,
      rolcreatedb: true,
      rolcanlogin: true,
      rolreplication: true,
      rolbypassrls: true,
      member_of: PRIV,
    });
    // The security boundary: JWT roles get nothing beyond LOGIN.
    expect(await roleFlags("jwt_user")).toEqual({
      rolsuper: false,
      rolinherit: true,
      rolcreaterole: false,
      rolcreatedb: false,
      rolcanlogin: true,
      rolreplication: false,
      rolbypassrls: false,
      member_of: "",
    });
    expect(await q("SELECT rolpassword FROM pg_authid WHERE rolname = 'pw_md5'")).toBe(
      `md5${md5Hash("md5-secret", "pw_md5")}`,
    );
    expect(await q("SELECT rolpassword FROM pg_authid WHERE rolname = 'pw_scram'")).toBe(scram);
    expect(await canLogin("pw_md5", "md5-secret")).toBe(true);
    expect(await canLogin("pw_md5", "wrong")).toBe(false);
    expect(await canLogin("pw_scram", "scram-secret")).toBe(true);
    expect(await q("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app1'")).toBe(
      "owner1",
    );
    expect(await q("SELECT has_database_privilege('neon_superuser', 'app1', 'CREATE')")).toBe("t");
    expect(await q("SELECT count(*) FROM public.health_check")).toBe("1");
    expect(
      await q(
        "SELECT extname || ' ' || extnamespace::regnamespace FROM pg_extension WHERE extname = 'neon'",
      ),
    ).toBe("neon neon");
    // Default privileges for the privileged role in the user database.
    expect(
      await q(
        "SELECT count(*) FROM pg_default_acl WHERE defaclnamespace = 'public'::regnamespace",
        "app1",
      ),
    ).toBe("2");

    // The second apply runs only the idempotent statements: no role or database DDL, the md5
    // role is not re-altered (passwords are compared as stored), and app1's public schema
    // already has its owner and privileges, so no task connects to it.
    const again = await apply(s);
    const main = again.plan.main.map((p) => [p.name, p.statements.length]);
    expect(main).toEqual([
      ["CreatePrivilegedRole", 1],
      ["CreateSchemaNeon", 1],
    ]);
    expect(again.plan.perDatabase).toEqual([]);
    expect(again.plan.final.map((p) => [p.name, p.statements.length])).toEqual([
      ["HandleNeonExtension", 4],
      ["CreateAvailabilityCheck", 1],
    ]);
    expect(again.statements).toBe(1 + 1 + 4 + 1);
    expect(again.connections).toBe(0);

    // A changed owner and a changed password are applied.
    const changed = spec({
      roles: [
        { name: "pw_md5", encrypted_password: md5Hash("other", "pw_md5") },
        { name: "owner1", encrypted_password: null },
        { name: "owner2", encrypted_password: null },
      ],
      databases: [{ name: "app1", owner: "owner2" }],
    });
    await apply(changed);
    expect(await q("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app1'")).toBe(
      "owner2",
    );
    expect(await canLogin("pw_md5", "other")).toBe(true);
    // Roles that left the spec are still there.
    expect(await q("SELECT count(*) FROM pg_roles WHERE rolname IN ('pw_scram', 'jwt_user')")).toBe(
      "2",
    );
  }, 60_000);

  it("rename_role renames, and the md5 password Postgres cleared is set again", async () => {
    await apply(
      spec({ roles: [{ name: "pw_before", encrypted_password: md5Hash("s", "pw_before") }] }),
    );
    const renamed = spec(
      { roles: [{ name: "pw_renamed", encrypted_password: md5Hash("s2", "pw_renamed") }] },
      { delta_operations: [{ action: "rename_role", name: "pw_before", new_name: "pw_renamed" }] },
    );
    const r = await apply(renamed);
    expect(r.plan.main.find((p) => p.name === "RenameRoles")?.statements.map((s) => s.sql)).toEqual(
      [`ALTER ROLE "pw_before" RENAME TO "pw_renamed"`],
    );
    expect(
      await q(
        "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname LIKE 'pw_%' AND rolname <> 'pw_md5' AND rolname <> 'pw_scram'",
      ),
    ).toBe("pw_renamed");
    expect(await canLogin("pw_renamed", "s2")).toBe(true);
    // A retry of the same spec finds the old name gone and does nothing.
    const retry = await apply(renamed);
    expect(retry.plan.main.find((p) => p.name === "RenameRoles")).toBeUndefined();
  }, 60_000);

  it("delete_role of a role owning objects in several databases and holding granted privileges", async () => {
    const base = {
      roles: [
        { name: "alice", encrypted_password: null },
        { name: "bob", encrypted_password: null },
        { name: "vic'tim", encrypted_password: null },
      ],
      databases: [
        { name: "dra", owner: "alice" },
        { name: "drb", owner: "bob" },
      ],
    };
    await apply(spec(base));
    for (const db of ["dra", "drb", "postgres"]) {
      await q(`GRANT CREATE ON SCHEMA public TO "vic'tim"`, db);
      await q(
        `SET ROLE "vic'tim"; CREATE TABLE public.owned_${db === "postgres" ? "sys" : db} (x int)`,
        db,
      );
    }
    // A table made by cloud_admin is granted to neon_superuser by default privileges; a member
    // passes a privilege on to the victim, so its grantor is the privileged role (cloud#13582).
    await q("CREATE TABLE public.shared (x int)", "dra");
    await q(`SET ROLE alice; GRANT SELECT ON public.shared TO "vic'tim"`, "dra");
    await q(
      `CREATE TABLE public.bobs (x int); GRANT SELECT ON public.bobs TO bob WITH GRANT OPTION`,
      "drb",
    );
    // bob holds SELECT's grant option itself and inherits all of them from neon_superuser.
    await q(`SET ROLE bob; GRANT SELECT ON public.bobs TO "vic'tim"`, "drb");

    const del = spec(
      { ...base, roles: base.roles.slice(0, 2) },
      { delta_operations: [{ action: "delete_role", name: "vic'tim" }] },
    );
    await apply(del);
    expect(await q(`SELECT count(*) FROM pg_roles WHERE rolname = 'vic''tim'`)).toBe("0");
    expect(await q("SELECT tableowner FROM pg_tables WHERE tablename = 'owned_dra'", "dra")).toBe(
      "alice",
    );
    expect(await q("SELECT tableowner FROM pg_tables WHERE tablename = 'owned_drb'", "drb")).toBe(
      "bob",
    );
    expect(await q("SELECT tableowner FROM pg_tables WHERE tablename = 'owned_sys'")).toBe(
      "cloud_admin",
    );
    // A retry is harmless.
    await apply(del);
  }, 60_000);

  it("delete_db detaches subscriptions, clears the template flag, and tolerates a missing db", async () => {
    await apply(
      spec({
        databases: [
          { name: "subdb", owner: "cloud_admin" },
          { name: "tmpl", owner: "cloud_admin" },
        ],
      }),
    );
    await q("SELECT pg_create_logical_replication_slot('keep_slot', 'pgoutput')");
    await q(
      `CREATE SUBSCRIPTION s1 CONNECTION 'host=127.0.0.1 port=${pg.port} dbname=postgres' PUBLICATION p WITH (connect = false, slot_name = 'keep_slot')`,
      "subdb",
    );
    await q("ALTER DATABASE tmpl is_template true");
    const del = spec(
      {},
      {
        delta_operations: [
          { action: "delete_db", name: "subdb" },
          { action: "delete_db", name: "tmpl" },
          { action: "delete_db", name: "nonexistent_db" },
        ],
      },
    );
    const r = await apply(del);
    expect(r.plan.warnings.join("\n")).toContain("nonexistent_db");
    expect(await q("SELECT count(*) FROM pg_database WHERE datname IN ('subdb', 'tmpl')")).toBe(
      "0",
    );
    expect(await q("SELECT count(*) FROM pg_subscription")).toBe("0");
    // The publisher's slot belongs to the parent branch and stays.
    expect(await q("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'keep_slot'")).toBe(
      "1",
    );
    await apply(del);
    await q("SELECT pg_drop_replication_slot('keep_slot')");
  }, 60_000);

  it("an invalid database is dropped and recreated", async () => {
    await apply(spec({ databases: [{ name: "broken", owner: "cloud_admin" }] }));
    await q("UPDATE pg_database SET datconnlimit = -2 WHERE datname = 'broken'");
    const r = await apply(spec({ databases: [{ name: "broken", owner: "cloud_admin" }] }));
    expect(r.plan.main.map((p) => p.name)).toContain("DropInvalidDatabases");
    expect(await q("SELECT datconnlimit FROM pg_database WHERE datname = 'broken'")).toBe("-1");
    expect(await q("SELECT 1", "broken")).toBe("1");
  }, 60_000);

  it("ALTER DATABASE SET traps neither break nor hijack the apply", async () => {
    await apply(
      spec({
        roles: [{ name: "trapper", encrypted_password: null }],
        databases: [{ name: "trap", owner: "cloud_admin" }],
      }),
    );
    await q("CREATE SCHEMA evil", "trap");
    await q(`GRANT CREATE ON SCHEMA public TO trapper`, "trap");
    await q(`SET ROLE trapper; CREATE TABLE public.t (x int)`, "trap");
    await q("ALTER DATABASE trap SET search_path = evil, public");
    await q("ALTER DATABASE trap SET default_transaction_read_only = on");
    await q("ALTER DATABASE trap SET statement_timeout = 1");
    const r = await apply(
      spec(
        {
          roles: [{ name: "trapper2", encrypted_password: null }],
          databases: [{ name: "trap", owner: "trapper2" }],
        },
        { delta_operations: [{ action: "delete_role", name: "trapper" }] },
      ),
    );
    expect(r.connections).toBeGreaterThan(0);
    // Checked through a connection with the maintenance options: a plain one would hit the traps.
    const trap = databaseClient(new URL(pg.url), "trap", "test");
    try {
      const [t] = await trap.unsafe(
        "SELECT tableowner FROM pg_catalog.pg_tables WHERE tablename = 't'",
      );
      expect(t?.tableowner).toBe("trapper2");
      const evil = await trap.unsafe(
        "SELECT count(*)::text AS n FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'evil'",
      );
      expect(evil[0]?.n).toBe("0");
    } finally {
      await trap.end({ timeout: 1 });
    }
  }, 60_000);

  it("drop_subscriptions_before_start: once per timeline, recorded in the marker", async () => {
    const s = spec(
      { databases: [{ name: "branchdb", owner: "cloud_admin" }] },
      { drop_subscriptions_before_start: true },
    );
    await apply(spec({ databases: [{ name: "branchdb", owner: "cloud_admin" }] }));
    const sub = (name: string) =>
      q(
        `CREATE SUBSCRIPTION ${name} CONNECTION 'host=127.0.0.1 port=${pg.port} dbname=postgres' PUBLICATION p WITH (connect = false)`,
        "branchdb",
      );
    await sub("inherited");
    await apply(s, 5);
    expect(await q("SELECT count(*) FROM pg_subscription")).toBe("0");
    expect(await q("SELECT id || ' ' || timeline_id FROM neon.drop_subscriptions_done")).toBe(
      `1 ${TIMELINE}`,
    );
    // A restart on the same timeline keeps subscriptions made since.
    await sub("own");
    await apply(s, 5);
    expect(await q("SELECT string_agg(subname, ',') FROM pg_subscription")).toBe("own");
    // A branch of the branch (a new timeline) drops them, and overwrites the single row.
    const child = "0123456789abcdef0123456789abcdef";
    await apply(s, 5, child);
    expect(await q("SELECT count(*) FROM pg_subscription")).toBe("0");
    expect(
      await q("SELECT string_agg(id || ' ' || timeline_id, ',') FROM neon.drop_subscriptions_done"),
    ).toBe(`1 ${child}`);
  }, 60_000);
});

// Hand-written hostile names (the categories of test_compute_catalog.py).
const HOSTILE = [
  "owner with spaces",
  "with%20percent ",
  "trailing tab\t",
  "inject'; SELECT pg_sleep(1000); --",
  "pound # and &amp=true",
  "emoji 🌍",
  `mix ";with ';inj $$ $x$ $ %I !/\\&#@`,
  `"in double quotes"`,
  "'in single quotes'",
  "dollar$",
  "dollar$$",
  "dollar$x$",
  "x",
  "xx",
  "$x",
  "x$",
  "$x$",
  "xx$",
  "$xx",
  "$xx$",
  "MixedCase",
  "x".repeat(63),
];

describe("hostile names", () => {
  it("are created exactly as given, reachable by name, and deleted", async () => {
    const roles = HOSTILE.map((name) => ({
      name: `r ${name}`.slice(0, 63),
      encrypted_password: null,
    }));
    const dbs = HOSTILE.map((name, i) => ({
      name: `d ${name}`.slice(0, 63),
      owner: roles[i]!.name,
    }));
    await apply(spec({ roles, databases: dbs }));
    const gotRoles = (await pg.sql`SELECT rolname FROM pg_roles`).map((r) => r.rolname as string);
    const gotDbs = (
      await pg.sql`SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database`
    ).map((r) => `${r.datname}|${r.owner}`);
    for (const r of roles) expect(gotRoles).toContain(r.name);
    for (const d of dbs) expect(gotDbs).toContain(`${d.name}|${d.owner}`);
    for (const d of dbs) {
      const c: Sql = databaseClient(new URL(pg.url), d.name, "test");
      expect((await c`SELECT current_database() AS db`)[0]!.db).toBe(d.name);
      await c.end({ timeout: 1 });
    }
    // Nothing else happened: no stray tables from injected text.
    expect(
      await q(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1000)%' AND pid <> pg_backend_pid()",
      ),
    ).toBe("0");
    await apply(
      spec(
        {},
        {
          delta_operations: [
            ...dbs.map((d) => ({ action: "delete_db", name: d.name })),
            ...roles.map((r) => ({ action: "delete_role", name: r.name })),
          ],
        },
      ),
    );
    const left = (await pg.sql`SELECT rolname FROM pg_roles`).map((r) => r.rolname);
    for (const r of roles) expect(left).not.toContain(r.name);
    const leftDbs = (await pg.sql`SELECT datname FROM pg_database`).map((r) => r.datname);
    for (const d of dbs) expect(leftDbs).not.toContain(d.name);
  }, 60_000);

  it("1,000 random identifiers round-trip byte for byte", async () => {
    const pool = [..."abcXYZ _-$'\"\\%=;#\t!é€🌍😀xx$$"];
    const enc = new TextEncoder();
    const names = new Set<string>();
    // mulberry32: a fixed seed keeps failures reproducible.
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    while (names.size < 1000) {
      let name = "";
      const len = 1 + rnd(40);
      for (let i = 0; i < len; i++) {
        const next = name + pool[rnd(pool.length)];
        if (enc.encode(next).length > 63) break;
        name = next;
      }
      if (!name.startsWith("pg_")) names.add(name);
    }
    const roles = [...names].map((name) => ({ name, encrypted_password: null }));
    await apply(spec({ roles }));
    const got = new Set(
      (await pg.sql`SELECT rolname FROM pg_roles`).map((r) => r.rolname as string),
    );
    const missing = [...names].filter((n) => !got.has(n));
    expect(missing).toEqual([]);
    await apply(
      spec({}, { delta_operations: roles.map((r) => ({ action: "delete_role", name: r.name })) }),
    );
    const after = new Set(
      (await pg.sql`SELECT rolname FROM pg_roles`).map((r) => r.rolname as string),
    );
    expect([...names].filter((n) => after.has(n))).toEqual([]);
  }, 60_000);
});

describe("through the lifecycle's entry point", () => {
  function env(metrics = createMetrics()): ComputeEnv {
    return {
      params: { connstr: new URL(pg.url), privilegedRoleName: PRIV },
      metrics,
    } as unknown as ComputeEnv;
  }
  const pspec = (s: ComputeSpec): ParsedSpec =>
    ({ spec: s, timelineId: TIMELINE }) as unknown as ParsedSpec;

  it("Replica and Static computes apply nothing", async () => {
    for (const mode of ["Replica", { Static: "0/16B5A50" }]) {
      await applySpec(
        env(),
        pspec(spec({ roles: [{ name: "never_made", encrypted_password: null }] }, { mode })),
        "reconfigure",
      );
    }
    expect(await q("SELECT count(*) FROM pg_roles WHERE rolname = 'never_made'")).toBe("0");
  }, 60_000);

  it("a primary applies, and on start the migrations follow in the background", async () => {
    await applySpec(
      env(),
      pspec(spec({ roles: [{ name: "via_lifecycle", encrypted_password: null }] })),
      "start",
    );
    expect(await q("SELECT count(*) FROM pg_roles WHERE rolname = 'via_lifecycle'")).toBe("1");
    const deadline = Date.now() + 10_000;
    let id = "";
    while (Date.now() < deadline) {
      id = await q("SELECT id FROM neon_migration.migration_id").catch(() => "");
      if (id === "12") break;
      await Bun.sleep(50);
    }
    expect(id).toBe("12");
  }, 60_000);
});

describe("dry run", () => {
  it("the printed plan, run through psql on an identical cluster, gives the same catalog", async () => {
    const twin = await startTestPostgres();
    try {
      const s = spec(
        {
          roles: [
            { name: "dry owner", encrypted_password: md5Hash("p", "dry owner") },
            { name: `dry "q'`, encrypted_password: null },
          ],
          databases: [
            { name: "dry db=1 'x'", owner: "dry owner" },
            { name: `dry "q'`, owner: `dry "q'` },
          ],
        },
        { delta_operations: [{ action: "delete_role", name: "nobody" }] },
      );
      const opts = { connstr: new URL(twin.url), privilegedRoleName: PRIV, timelineId: TIMELINE };
      const { text } = await planSpecSql(s, opts);
      const { stderr } = await twin.psqlScript(text, {
        pgoptions: "-c search_path= -c statement_timeout=0",
      });
      // psqlScript throws when psql exits non-zero (ON_ERROR_STOP).
      expect(stderr).not.toContain("ERROR");

      const fresh = await startTestPostgres();
      try {
        await applySpecSql(s, { ...opts, connstr: new URL(fresh.url), concurrency: 2 });
        expect(await catalogSnapshot(twin, "dry db=1 'x'")).toEqual(
          await catalogSnapshot(fresh, "dry db=1 'x'"),
        );
      } finally {
        await fresh.stop();
      }
    } finally {
      await twin.stop();
    }
  }, 60_000);
});
