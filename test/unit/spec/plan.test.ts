// The planner over hand-built catalog snapshots: no Postgres. Expected statements are written
// out by hand from the reference's apply phases, not captured from the planner.
import { describe, expect, test } from "bun:test";
import { decode } from "../../../src/api/decode.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { reconfigureConcurrency, startConcurrency } from "../../../src/spec/apply.ts";
import type { CatalogDatabase, CatalogSnapshot } from "../../../src/spec/catalog.ts";
import { formatPlan, type Plan, planSpec, planStatements } from "../../../src/spec/plan.ts";

const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";
const MD5 = "6b1d16b78004bbd51fa06af9eda75972";
const SCRAM = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";
const OPTS = { privilegedRoleName: "neon_superuser", timelineId: TIMELINE };

// biome-ignore lint/suspicious/noExplicitAny: test documents are free-form JSON.
function spec(patch: Record<string, any> = {}, cluster: Record<string, any> = {}): ComputeSpec {
  return decode(ComputeSpec, {
    format_version: 1.0,
    cluster: { roles: [], databases: [], ...cluster },
    suspend_timeout_seconds: -1,
    ...patch,
  });
}

function db(name: string, owner: string, extra: Partial<CatalogDatabase> = {}): CatalogDatabase {
  return { name, owner, restrictConn: false, invalid: false, ...extra };
}

/** A fresh cluster initdb'ed with cloud_admin, plus whatever is given. */
function catalog(
  roles: [string, string | null][] = [],
  dbs: CatalogDatabase[] = [],
  dropSubscriptionsDone = false,
): CatalogSnapshot {
  const all: [string, string | null][] = [
    ["cloud_admin", null],
    ["pg_monitor", null],
    ["neon_superuser", null],
    ...roles,
  ];
  const databases = [
    db("postgres", "cloud_admin"),
    db("template1", "cloud_admin"),
    db("template0", "cloud_admin", { restrictConn: true }),
    ...dbs,
  ];
  return {
    roles: new Map(all.map(([name, password]) => [name, { name, password }])),
    databases: new Map(databases.map((d) => [d.name, d])),
    dropSubscriptionsDone,
  };
}

const phaseSql = (plan: Plan, name: string) =>
  [...plan.main, ...plan.final].find((p) => p.name === name)?.statements.map((s) => s.sql) ?? [];
const phaseNames = (plan: Plan) => ({
  main: plan.main.map((p) => p.name),
  final: plan.final.map((p) => p.name),
});
const taskSql = (
  plan: Plan,
  database: string | null,
  which: "preDrop" | "perDatabase" = "perDatabase",
) =>
  plan[which]
    .find((t) => t.database === database)
    ?.phases.flatMap((p) => p.statements.map((s) => s.sql));

describe("first apply on a fresh cluster", () => {
  const s = spec(
    {
      local_proxy_config: {
        jwks: [
          {
            id: "1",
            role_names: ["jwt_user"],
            jwks_url: "https://example.invalid/jwks",
            provider_name: "p",
          },
        ],
      },
    },
    {
      roles: [
        { name: "alice", encrypted_password: MD5 },
        { name: "bob", encrypted_password: SCRAM, options: null },
        { name: "jwt_user", encrypted_password: null },
      ],
      databases: [{ name: "app", owner: "alice" }],
    },
  );
  const plan = planSpec(catalog(), s, OPTS);

  test("phases in the reference's order, empty ones left out", () => {
    expect(phaseNames(plan)).toEqual({
      main: [
        "CreatePrivilegedRole",
        "CreateAndAlterRoles",
        "CreateAndAlterDatabases",
        "CreateSchemaNeon",
      ],
      final: ["HandleNeonExtension", "CreateAvailabilityCheck"],
    });
    expect(plan.preDrop).toEqual([]);
    expect(plan.warnings).toEqual([]);
  });

  test("roles: privileged attributes and membership, JWKS roles plain", () => {
    expect(phaseSql(plan, "CreateAndAlterRoles")).toEqual([
      `CREATE ROLE "alice" INHERIT CREATEROLE CREATEDB BYPASSRLS REPLICATION IN ROLE neon_superuser  LOGIN PASSWORD 'md5${MD5}'`,
      `CREATE ROLE "bob" INHERIT CREATEROLE CREATEDB BYPASSRLS REPLICATION IN ROLE neon_superuser  LOGIN PASSWORD '${SCRAM}'`,
      `CREATE ROLE "jwt_user"  LOGIN PASSWORD NULL`,
    ]);
  });

  test("the privileged role is created only if missing, bare and with its attributes", () => {
    const [sql] = phaseSql(plan, "CreatePrivilegedRole");
    expect(sql).toContain("'neon_superuser'::pg_catalog.name");
    expect(sql).toContain(
      "CREATE ROLE neon_superuser CREATEDB CREATEROLE NOLOGIN REPLICATION BYPASSRLS IN ROLE pg_read_all_data, pg_write_all_data;",
    );
  });

  test("databases: created with owner, granted to the privileged role", () => {
    expect(phaseSql(plan, "CreateAndAlterDatabases")).toEqual([
      `CREATE DATABASE "app"  OWNER "alice"`,
      `GRANT ALL PRIVILEGES ON DATABASE "app" TO neon_superuser`,
    ]);
    expect(phaseSql(plan, "CreateSchemaNeon")).toEqual(["CREATE SCHEMA IF NOT EXISTS neon"]);
  });

  test("per database: schema owner rule and default grants in user databases only", () => {
    expect(plan.perDatabase.map((t) => t.database)).toEqual(["app"]);
    const [owner, grants] = taskSql(plan, "app")!;
    expect(owner).toContain(
      "EXECUTE pg_catalog.format('ALTER SCHEMA public OWNER TO %I', $x$alice$x$)",
    );
    expect(owner).toMatch(/^DO \$xx\$/);
    expect(grants).toContain(
      "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO neon_superuser WITH GRANT OPTION",
    );
    expect(grants).toContain("GRANT CREATE ON SCHEMA public TO web_access");
  });

  test("neon extension statements", () => {
    expect(phaseSql(plan, "HandleNeonExtension")).toEqual([
      "CREATE EXTENSION IF NOT EXISTS neon WITH SCHEMA neon",
      "UPDATE pg_catalog.pg_extension SET extrelocatable = true WHERE extname OPERATOR(pg_catalog.=) 'neon'::pg_catalog.name AND extrelocatable OPERATOR(pg_catalog.=) false",
      "ALTER EXTENSION neon SET SCHEMA neon",
      "ALTER EXTENSION neon UPDATE",
    ]);
    expect(phaseSql(plan, "CreateAvailabilityCheck")[0]).toContain(
      "CREATE TABLE public.health_check",
    );
  });
});

describe("reconfigure with nothing changed", () => {
  test("no role or database statements, md5 and SCRAM passwords compared as stored", () => {
    const s = spec(
      {},
      {
        roles: [
          { name: "alice", encrypted_password: MD5 },
          { name: "bob", encrypted_password: SCRAM },
          { name: "nopw", encrypted_password: null },
        ],
        databases: [{ name: "app", owner: "alice" }],
      },
    );
    const plan = planSpec(
      catalog(
        [
          ["alice", `md5${MD5}`],
          ["bob", SCRAM],
          ["nopw", null],
        ],
        [db("app", "alice")],
      ),
      s,
      OPTS,
    );
    expect(phaseNames(plan).main).toEqual(["CreatePrivilegedRole", "CreateSchemaNeon"]);
    expect(plan.perDatabase.map((t) => [t.database, t.phases.map((p) => p.name)])).toEqual([
      ["app", ["ChangeSchemaPerms"]],
    ]);
  });

  test("hundreds of roles and databases: only the changed ones", () => {
    const roles = Array.from({ length: 300 }, (_, i) => ({
      name: `r${i}`,
      encrypted_password: MD5,
    }));
    const dbs = Array.from({ length: 100 }, (_, i) => ({ name: `d${i}`, owner: `r${i}` }));
    const snap = catalog(
      roles.map((r) => [r.name, `md5${MD5}`] as [string, string]),
      dbs.map((d) => db(d.name, d.owner)),
    );
    roles[7] = { name: "r7", encrypted_password: SCRAM };
    dbs[3] = { name: "d3", owner: "r4" };
    const plan = planSpec(snap, spec({}, { roles, databases: dbs }), OPTS);
    expect(phaseSql(plan, "CreateAndAlterRoles")).toEqual([
      `ALTER ROLE "r7"  LOGIN PASSWORD '${SCRAM}'`,
    ]);
    expect(phaseSql(plan, "CreateAndAlterDatabases")).toEqual([
      `ALTER DATABASE "d3" OWNER TO "r4"`,
    ]);
  });
});

describe("roles", () => {
  test("a changed password is altered (options, LOGIN, password; never privileges)", () => {
    const s = spec({}, { roles: [{ name: "alice", encrypted_password: null }] });
    const plan = planSpec(catalog([["alice", `md5${MD5}`]]), s, OPTS);
    expect(phaseSql(plan, "CreateAndAlterRoles")).toEqual([
      `ALTER ROLE "alice"  LOGIN PASSWORD NULL`,
    ]);
  });

  test("rename_role renames an existing role and re-sets its md5 password", () => {
    const s = spec(
      { delta_operations: [{ action: "rename_role", name: "old", new_name: "new" }] },
      { roles: [{ name: "new", encrypted_password: MD5 }] },
    );
    const plan = planSpec(catalog([["old", `md5${MD5}`]]), s, OPTS);
    expect(phaseSql(plan, "RenameRoles")).toEqual([`ALTER ROLE "old" RENAME TO "new"`]);
    expect(phaseSql(plan, "CreateAndAlterRoles")).toEqual([
      `ALTER ROLE "new"  LOGIN PASSWORD 'md5${MD5}'`,
    ]);
  });

  test("rename_role keeps a SCRAM password (Postgres does too)", () => {
    const s = spec(
      { delta_operations: [{ action: "rename_role", name: "old", new_name: "new" }] },
      { roles: [{ name: "new", encrypted_password: SCRAM }] },
    );
    const plan = planSpec(catalog([["old", SCRAM]]), s, OPTS);
    expect(phaseSql(plan, "RenameRoles")).toEqual([`ALTER ROLE "old" RENAME TO "new"`]);
    expect(phaseSql(plan, "CreateAndAlterRoles")).toEqual([]);
  });

  test("rename_role of a missing role does nothing (a retry)", () => {
    const s = spec({
      delta_operations: [{ action: "rename_role", name: "gone", new_name: "new" }],
    });
    const plan = planSpec(catalog([["new", null]]), s, OPTS);
    expect(phaseSql(plan, "RenameRoles")).toEqual([]);
  });

  test("delete_role cleans up in every spec database it does not own, and the system db", () => {
    const s = spec(
      { delta_operations: [{ action: "delete_role", name: "bad" }] },
      {
        databases: [
          { name: "a", owner: "alice" },
          { name: "b", owner: "bad" },
        ],
      },
    );
    const plan = planSpec(
      catalog(
        [
          ["bad", null],
          ["alice", null],
        ],
        [db("a", "alice"), db("b", "bad")],
      ),
      s,
      OPTS,
    );
    const a = taskSql(plan, "a")!;
    expect(a.slice(0, 1)).toEqual([`REASSIGN OWNED BY "bad" TO "alice"`]);
    expect(a[1]).toContain("SET LOCAL ROLE %I");
    expect(a[1]).toContain("$x$bad$x$");
    expect(a[2]).toBe(`DROP OWNED BY "bad"`);
    // b is owned by the role: only the schema work.
    expect(plan.perDatabase.find((t) => t.database === "b")!.phases.map((p) => p.name)).toEqual([
      "ChangeSchemaPerms",
    ]);
    const sys = taskSql(plan, null)!;
    expect([sys[0], sys[2]]).toEqual([
      `REASSIGN OWNED BY "bad" TO "cloud_admin"`,
      `DROP OWNED BY "bad"`,
    ]);
    expect(phaseSql(plan, "DropRoles")).toEqual([`DROP ROLE IF EXISTS "bad"`]);
  });

  test("delete_role of a role that is gone: only the idempotent DROP ROLE IF EXISTS", () => {
    const s = spec({ delta_operations: [{ action: "delete_role", name: "gone" }] });
    const plan = planSpec(catalog(), s, OPTS);
    expect(plan.perDatabase).toEqual([]);
    expect(phaseSql(plan, "DropRoles")).toEqual([`DROP ROLE IF EXISTS "gone"`]);
  });

  test("roles missing from the spec are never dropped", () => {
    const plan = planSpec(catalog([["stray", null]]), spec(), OPTS);
    expect(planStatements(plan).some((s) => /DROP (ROLE|OWNED)/.test(s.sql))).toBe(false);
  });

  test("an invalid privileged role name is refused", () => {
    expect(() => planSpec(catalog(), spec(), { ...OPTS, privilegedRoleName: "x; DROP" })).toThrow(
      /privileged role name/,
    );
  });
});

describe("databases", () => {
  test("delete_db detaches subscriptions first, then clears the template flag and drops with FORCE", () => {
    const s = spec({
      delta_operations: [
        { action: "delete_db", name: "old" },
        { action: "delete_db", name: "nonexistent_db" },
      ],
    });
    const plan = planSpec(catalog([], [db("old", "cloud_admin")]), s, OPTS);
    expect(plan.preDrop.map((t) => t.database)).toEqual(["old"]);
    expect(taskSql(plan, "old", "preDrop")![0]).toContain(
      "ALTER SUBSCRIPTION %I SET (slot_name = NONE)",
    );
    const sql = phaseSql(plan, "RenameAndDeleteDatabases");
    expect(sql).toHaveLength(4);
    expect(sql[0]).toContain(
      "EXECUTE pg_catalog.format('ALTER DATABASE %I is_template false', $x$old$x$)",
    );
    expect(sql[1]).toBe(`DROP DATABASE IF EXISTS "old" WITH (FORCE)`);
    expect(sql[3]).toBe(`DROP DATABASE IF EXISTS "nonexistent_db" WITH (FORCE)`);
    expect(plan.warnings).toEqual([
      "not dropping subscriptions in database nonexistent_db before deleting it: it does not exist",
    ]);
  });

  test("an invalid database is dropped and recreated when the spec still has it", () => {
    const s = spec({}, { databases: [{ name: "broken", owner: "alice" }] });
    const plan = planSpec(
      catalog(
        [["alice", null]],
        [db("broken", "alice", { invalid: true }), db("other", "x", { invalid: true })],
      ),
      s,
      OPTS,
    );
    expect(phaseSql(plan, "DropInvalidDatabases")).toEqual([
      `DROP DATABASE IF EXISTS "broken"`,
      `DROP DATABASE IF EXISTS "other"`,
    ]);
    expect(phaseSql(plan, "CreateAndAlterDatabases")[0]).toBe(
      `CREATE DATABASE "broken"  OWNER "alice"`,
    );
    expect(plan.perDatabase.map((t) => t.database)).toEqual(["broken"]);
  });

  test("owner change and rename_db", () => {
    const s = spec(
      { delta_operations: [{ action: "rename_db", name: "a", new_name: "b" }] },
      { databases: [{ name: "b", owner: "bob" }] },
    );
    const plan = planSpec(
      catalog(
        [
          ["alice", null],
          ["bob", null],
        ],
        [db("a", "alice")],
      ),
      s,
      OPTS,
    );
    expect(phaseSql(plan, "RenameAndDeleteDatabases")).toEqual([
      `ALTER DATABASE "a" RENAME TO "b"`,
    ]);
    expect(phaseSql(plan, "CreateAndAlterDatabases")).toEqual([
      `ALTER DATABASE "b" OWNER TO "bob"`,
    ]);
  });

  test("databases closed to connections are skipped per database, with a warning", () => {
    const s = spec({}, { databases: [{ name: "closed", owner: "cloud_admin" }] });
    const plan = planSpec(
      catalog([], [db("closed", "cloud_admin", { restrictConn: true })]),
      s,
      OPTS,
    );
    expect(plan.perDatabase).toEqual([]);
    expect(plan.warnings[0]).toContain("skipping the per-database work in closed");
  });

  test("hostile names are quoted and dollar-quoted, never spliced", () => {
    const name = `x'; DROP TABLE t; --"$$x$`;
    const s = spec(
      {},
      { roles: [{ name, encrypted_password: null }], databases: [{ name, owner: name }] },
    );
    const plan = planSpec(catalog(), s, OPTS);
    expect(phaseSql(plan, "CreateAndAlterDatabases")[0]).toBe(
      `CREATE DATABASE "x'; DROP TABLE t; --""$$x$"  OWNER "x'; DROP TABLE t; --""$$x$"`,
    );
    const [owner] = taskSql(plan, name)!;
    expect(owner).toMatch(/^DO \$xxx\$/);
    expect(owner).toContain(`$xx$${name}$xx$`);
  });
});

describe("subscriptions and extensions", () => {
  const s = spec(
    { drop_subscriptions_before_start: true },
    { databases: [{ name: "app", owner: "cloud_admin" }] },
  );

  test("drop_subscriptions_before_start: per-database drops and the marker, once per timeline", () => {
    const plan = planSpec(catalog([], [db("app", "cloud_admin")]), s, OPTS);
    expect(plan.perDatabase[0]!.phases.map((p) => p.name)).toEqual([
      "ChangeSchemaPerms",
      "DropLogicalSubscriptions",
    ]);
    const marker = phaseSql(plan, "FinalizeDropLogicalSubscriptions")[0]!;
    expect(marker).toContain(`VALUES (1, '${TIMELINE}')`);
    const again = planSpec(catalog([], [db("app", "cloud_admin")], true), s, OPTS);
    expect(again.perDatabase[0]!.phases.map((p) => p.name)).toEqual(["ChangeSchemaPerms"]);
    expect(phaseSql(again, "FinalizeDropLogicalSubscriptions")).toEqual([]);
  });

  test("pg_stat_statements only when the settings preload it", () => {
    const withIt = spec(
      {},
      {
        settings: [
          { name: "shared_preload_libraries", value: "neon,pg_stat_statements", vartype: "string" },
        ],
      },
    );
    expect(phaseSql(planSpec(catalog(), withIt, OPTS), "HandleOtherExtensions")).toEqual([
      "CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public",
    ]);
    const confOnly = spec({}, { postgresql_conf: "shared_preload_libraries='pg_stat_statements'" });
    expect(phaseSql(planSpec(catalog(), confOnly, OPTS), "HandleOtherExtensions")).toEqual([]);
  });

  test("audit phases come last", () => {
    const plan = planSpec(catalog(), spec({ audit_log_level: "Hipaa" }), OPTS);
    expect(phaseNames(plan).final.slice(-3)).toEqual([
      "CreatePgauditExtension",
      "CreatePgauditlogtofileExtension",
      "DisablePostgresDBPgAudit",
    ]);
  });
});

describe("dry run", () => {
  test("a psql script with conninfo database switches", () => {
    const s = spec(
      { delta_operations: [{ action: "delete_role", name: "r" }] },
      { databases: [{ name: `a b'c"d=e`, owner: "o" }] },
    );
    const text = formatPlan(planSpec(catalog([["r", null]], []), s, OPTS), "postgres");
    expect(text).toContain(`CREATE DATABASE "a b'c""d=e"  OWNER "o";\n`);
    expect(text).toContain(`\\connect -reuse-previous=on "dbname='a b\\'c""d=e'"\n`);
    // Back to the system database for its own task and the final phases.
    expect(text).toContain(
      `\\connect -reuse-previous=on "dbname='postgres'"\n-- [postgres] DeleteDBRoleReferences\nREASSIGN OWNED BY "r" TO "cloud_admin";`,
    );
    expect(text.trimEnd().split("\n").at(-1)).toBe(`DROP ROLE IF EXISTS "r";`);
  });
});

describe("concurrency", () => {
  const withMax = (v: string) =>
    spec({}, { settings: [{ name: "max_connections", value: v, vartype: "integer" }] });
  test("start: derived from max_connections", () => {
    expect(startConcurrency(spec())).toBe(10);
    expect(startConcurrency(withMax("0"))).toBe(1);
    expect(startConcurrency(withMax("9"))).toBe(9);
    expect(startConcurrency(withMax("10"))).toBe(10);
    expect(startConcurrency(withMax("29"))).toBe(10);
    expect(startConcurrency(withMax("30"))).toBe(10);
    expect(startConcurrency(withMax("112"))).toBe(37);
    expect(startConcurrency(withMax("299"))).toBe(99);
    expect(startConcurrency(withMax("300"))).toBe(100);
    expect(startConcurrency(withMax("x"))).toBe(10);
    expect(startConcurrency(spec({}, { postgresql_conf: "a=1\n max_connections = 60 \n" }))).toBe(
      20,
    );
    expect(
      startConcurrency(spec({}, { postgresql_conf: "max_connections_x=60\nmax_connections=x" })),
    ).toBe(10);
  });
  test("reconfigure: reconfigure_concurrency, at least 1", () => {
    expect(reconfigureConcurrency(spec())).toBe(1);
    expect(reconfigureConcurrency(spec({ reconfigure_concurrency: 5 }))).toBe(5);
    expect(reconfigureConcurrency(spec({ reconfigure_concurrency: 0 }))).toBe(1);
  });
});

describe("lakebase mode", () => {
  test("the Databricks phases in the reference's places; the privileged role without REPLICATION", () => {
    const s = spec({ delta_operations: [{ action: "delete_role", name: "gone", new_name: null }] });
    const plan = planSpec(catalog([["gone", null]]), s, { ...OPTS, lakebase: true });
    expect(phaseNames(plan)).toEqual({
      main: [
        "CreatePrivilegedRole",
        "CreateDatabricksRoles",
        "AlterDatabricksRoles",
        "CreateSchemaNeon",
      ],
      final: [
        "HandleNeonExtension",
        "HandleDatabricksAuthExtension",
        "CreateAvailabilityCheck",
        "DropRoles",
        "AddDatabricksGrants",
        "CreateDatabricksMisc",
      ],
    });
    const [priv] = phaseSql(plan, "CreatePrivilegedRole");
    expect(priv).toContain(
      "CREATE ROLE neon_superuser CREATEDB CREATEROLE NOLOGIN BYPASSRLS IN ROLE pg_read_all_data, pg_write_all_data;",
    );
    const roles = phaseSql(plan, "CreateDatabricksRoles");
    expect(roles).toHaveLength(3);
    expect(roles[0]).toContain(
      `CREATE ROLE "databricks_monitor" IN ROLE pg_monitor LOGIN PASSWORD NULL;`,
    );
    expect(roles[1]).toContain(
      `CREATE ROLE "databricks_control_plane" SUPERUSER LOGIN PASSWORD NULL;`,
    );
    expect(roles[2]).toContain(`CREATE ROLE "databricks_gateway"  LOGIN PASSWORD NULL;`);
    const auth = phaseSql(plan, "HandleDatabricksAuthExtension");
    expect(auth).toHaveLength(3);
    expect(auth[0]).toBe("DROP EXTENSION IF EXISTS databricks_auth");
    expect(auth[1]).toContain("CREATE EXTENSION databricks_auth;");
    expect(auth[2]).toContain("GRANT SELECT ON %I.databricks_auth_metrics TO pg_monitor");
    expect(phaseSql(plan, "AddDatabricksGrants")).toHaveLength(5);
  });

  test("off: none of it, and REPLICATION stays", () => {
    const plan = planSpec(catalog(), spec(), OPTS);
    expect(phaseNames(plan).main).toEqual(["CreatePrivilegedRole", "CreateSchemaNeon"]);
    expect(phaseSql(plan, "CreatePrivilegedRole")[0]).toContain("NOLOGIN REPLICATION BYPASSRLS");
  });
});
