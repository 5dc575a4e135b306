// The planner's use of the per-database public-schema facts: no Postgres. The phase is left out
// only where the snapshot shows it would change nothing, and only for the database the snapshot
// read (not one this plan drops, renames or creates), and never when roles are renamed or deleted.
import { describe, expect, test } from "bun:test";
import { decode } from "../../../src/api/decode.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import type { CatalogSnapshot, PublicSchemaState } from "../../../src/spec/catalog.ts";
import { type Plan, planSpec, publicSchemasToRead } from "../../../src/spec/plan.ts";

const OPTS = { privilegedRoleName: "neon_superuser", timelineId: "00".repeat(16) };

// biome-ignore lint/suspicious/noExplicitAny: test documents are free-form JSON.
function spec(cluster: Record<string, any>, patch: Record<string, any> = {}): ComputeSpec {
  return decode(ComputeSpec, {
    format_version: 1.0,
    suspend_timeout_seconds: -1,
    cluster: { roles: [], databases: [], ...cluster },
    ...patch,
  });
}

const DONE: PublicSchemaState = {
  exists: true,
  owner: "pg_database_owner",
  superuser: true,
  webAccessGrantApplies: true,
  webAccessCanCreate: false,
  defaultTablePrivileges: true,
  defaultSequencePrivileges: true,
};

function snapshot(
  schema: Partial<PublicSchemaState> | null,
  roles: string[] = ["cloud_admin", "neon_superuser", "alice"],
): CatalogSnapshot {
  const db = (name: string, owner = "alice") => ({
    name,
    owner,
    restrictConn: false,
    invalid: false,
  });
  return {
    roles: new Map(roles.map((name) => [name, { name, password: null }])),
    databases: new Map([
      ["postgres", db("postgres", "cloud_admin")],
      ["app", db("app")],
    ]),
    dropSubscriptionsDone: false,
    ...(schema ? { publicSchemas: new Map([["app", { ...DONE, ...schema }]]) } : {}),
  };
}

const APP = spec({
  roles: [{ name: "alice", encrypted_password: null }],
  databases: [{ name: "app", owner: "alice" }],
});

const phasesIn = (plan: Plan, db: string) =>
  plan.perDatabase.find((t) => t.database === db)?.phases.map((p) => p.name) ?? [];

describe("ChangeSchemaPerms", () => {
  test("left out where everything is in place, or there is no public schema", () => {
    expect(phasesIn(planSpec(snapshot({}), APP, OPTS), "app")).toEqual([]);
    expect(planSpec(snapshot({}), APP, OPTS).perDatabase).toEqual([]);
    expect(phasesIn(planSpec(snapshot({ exists: false, owner: null }), APP, OPTS), "app")).toEqual(
      [],
    );
  });

  test("planned without facts, or when any of them says there is work", () => {
    const cases: [string, Partial<PublicSchemaState> | null][] = [
      ["no facts", null],
      ["owner cloud_admin", { owner: "cloud_admin" }],
      ["owner zenith_admin", { owner: "zenith_admin" }],
      ["table defaults missing", { defaultTablePrivileges: false }],
      ["sequence defaults missing", { defaultSequencePrivileges: false }],
      ["not a superuser", { superuser: false }],
    ];
    for (const [name, facts] of cases) {
      expect({ name, phases: phasesIn(planSpec(snapshot(facts), APP, OPTS), "app") }).toEqual({
        name,
        phases: ["ChangeSchemaPerms"],
      });
    }
  });

  test("web_access: its CREATE is checked only where it exists (now or by this plan) and applies", () => {
    const withWebAccess = snapshot({}, ["cloud_admin", "neon_superuser", "alice", "web_access"]);
    expect(phasesIn(planSpec(withWebAccess, APP, OPTS), "app")).toEqual(["ChangeSchemaPerms"]);
    const granted = snapshot({ webAccessCanCreate: true }, [
      "cloud_admin",
      "neon_superuser",
      "alice",
      "web_access",
    ]);
    expect(phasesIn(planSpec(granted, APP, OPTS), "app")).toEqual([]);
    const before15 = snapshot({ webAccessGrantApplies: false }, [
      "cloud_admin",
      "neon_superuser",
      "alice",
      "web_access",
    ]);
    expect(phasesIn(planSpec(before15, APP, OPTS), "app")).toEqual([]);
    const created = spec({
      roles: [
        { name: "alice", encrypted_password: null },
        { name: "web_access", encrypted_password: null },
      ],
      databases: [{ name: "app", owner: "alice" }],
    });
    expect(phasesIn(planSpec(snapshot({}), created, OPTS), "app")).toEqual(["ChangeSchemaPerms"]);
  });

  test("not trusted for a database this plan drops and recreates, or renames", () => {
    const recreated = spec(
      { databases: [{ name: "app", owner: "alice" }] },
      { delta_operations: [{ action: "delete_db", name: "app", new_name: null }] },
    );
    expect(phasesIn(planSpec(snapshot({}), recreated, OPTS), "app")).toEqual(["ChangeSchemaPerms"]);
    const renamedOnto = spec(
      { databases: [{ name: "app", owner: "alice" }] },
      { delta_operations: [{ action: "rename_db", name: "app", new_name: "other" }] },
    );
    // app was renamed away; the spec's app is created anew by this plan.
    expect(phasesIn(planSpec(snapshot({}), renamedOnto, OPTS), "app")).toEqual([
      "ChangeSchemaPerms",
    ]);
  });

  test("not trusted anywhere when a role is renamed or deleted", () => {
    for (const op of [
      { action: "rename_role", name: "alice", new_name: "alicia" },
      { action: "delete_role", name: "alice", new_name: null },
    ]) {
      const s = spec(
        { databases: [{ name: "app", owner: "cloud_admin" }] },
        { delta_operations: [op] },
      );
      expect({ op: op.action, phases: phasesIn(planSpec(snapshot({}), s, OPTS), "app") }).toEqual({
        op: op.action,
        phases:
          op.action === "delete_role"
            ? ["DeleteDBRoleReferences", "ChangeSchemaPerms"]
            : ["ChangeSchemaPerms"],
      });
    }
    // A delta operation on a role that does not exist changes nothing: the facts still hold.
    const stale = spec(APP.cluster, {
      delta_operations: [{ action: "delete_role", name: "ghost", new_name: null }],
    });
    expect(phasesIn(planSpec(snapshot({}), stale, OPTS), "app")).toEqual([]);
  });
});

describe("publicSchemasToRead", () => {
  test("the spec's existing databases, less those delta operations touch", () => {
    const s = spec(
      {
        databases: [
          { name: "app", owner: "alice" },
          { name: "new", owner: "alice" },
        ],
      },
      { delta_operations: [{ action: "delete_db", name: "gone", new_name: null }] },
    );
    expect(publicSchemasToRead(s, snapshot(null))).toEqual(["app"]);
    const renamed = spec(APP.cluster, {
      delta_operations: [{ action: "rename_db", name: "x", new_name: "app" }],
    });
    expect(publicSchemasToRead(renamed, snapshot(null))).toEqual([]);
  });

  test("none when a delta operation renames or deletes an existing role", () => {
    const s = spec(APP.cluster, {
      delta_operations: [{ action: "rename_role", name: "alice", new_name: "alicia" }],
    });
    expect(publicSchemasToRead(s, snapshot(null))).toEqual([]);
    const stale = spec(APP.cluster, {
      delta_operations: [{ action: "delete_role", name: "ghost", new_name: null }],
    });
    expect(publicSchemasToRead(stale, snapshot(null))).toEqual(["app"]);
  });
});
