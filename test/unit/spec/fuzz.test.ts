// Spec fuzzing: generated ConfigurationRequest bodies (valid ones and mutations of them, see
// test/support/fuzz.ts) through the path /configure takes: parseJson → parseSpec → planSpec.
// Properties, for every case:
// - a refusal is a SchemaError or JsonSyntaxError from the decoder, or a plain Error from
//   parseSpec, with a one-line message; nothing else is ever thrown, and Object.prototype is
//   never touched (so a refused document never reaches the planner);
// - decoding is stable: the decoded spec, serialised and decoded again, is the same;
// - an accepted spec plans without throwing, and after the plan's effect every role of the spec
//   exists with its stored password and every database with its owner;
// - the plan of the same spec over the catalog that effect left changes nothing: no role or
//   database is created, altered, renamed or dropped the second time.
// COMPUTE_CTL_TEST_SEED replays a run; COMPUTE_CTL_TEST_FUZZ_CASES sets the count (10,000).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { ConfigurationRequest } from "../../../src/api/config.ts";
import { JsonSyntaxError, parseJson, SchemaError } from "../../../src/api/decode.ts";
import { parseSpec } from "../../../src/api/parsed-spec.ts";
import type { ComputeSpec } from "../../../src/api/spec.ts";
import type { CatalogSnapshot } from "../../../src/spec/catalog.ts";
import { type Plan, planSpec } from "../../../src/spec/plan.ts";
import { storedPassword } from "../../../src/spec/quote.ts";
import { campaignSeed, genCase, knob, serialize } from "../../support/fuzz.ts";

setDefaultTimeout(120_000);

const SEED = campaignSeed();
const CASES = knob("COMPUTE_CTL_TEST_FUZZ_CASES", 10_000);
const OPTS = {
  privilegedRoleName: "neon_superuser",
  timelineId: "2414a61ffc94e428f14b5758fe308e13",
};
console.log(`spec fuzz: seed ${SEED} (COMPUTE_CTL_TEST_SEED=${SEED} replays it), ${CASES} cases`);

function freshCatalog(): CatalogSnapshot {
  const roles = ["cloud_admin", "pg_monitor", "neon_superuser"];
  const dbs = [
    { name: "postgres", owner: "cloud_admin", restrictConn: false, invalid: false },
    { name: "template1", owner: "cloud_admin", restrictConn: false, invalid: false },
    { name: "template0", owner: "cloud_admin", restrictConn: true, invalid: false },
  ];
  return {
    roles: new Map(roles.map((name) => [name, { name, password: null }])),
    databases: new Map(dbs.map((d) => [d.name, d])),
    dropSubscriptionsDone: false,
  };
}

const IDENT = `"((?:[^"]|"")*)"`;
const unquote = (s: string) => s.replaceAll('""', '"');
const STMT = {
  renameRole: new RegExp(`^ALTER ROLE ${IDENT} RENAME TO ${IDENT}$`, "s"),
  createRole: new RegExp(`^CREATE ROLE ${IDENT} .* PASSWORD (NULL|E?'(?:[^']|'')*')$`, "s"),
  alterRole: new RegExp(`^ALTER ROLE ${IDENT} .*PASSWORD (NULL|E?'(?:[^']|'')*')$`, "s"),
  dropRole: new RegExp(`^DROP ROLE IF EXISTS ${IDENT}$`, "s"),
  createDb: new RegExp(`^CREATE DATABASE ${IDENT} .*OWNER ${IDENT}$`, "s"),
  renameDb: new RegExp(`^ALTER DATABASE ${IDENT} RENAME TO ${IDENT}$`, "s"),
  ownerDb: new RegExp(`^ALTER DATABASE ${IDENT} OWNER TO ${IDENT}$`, "s"),
  dropDb: new RegExp(`^DROP DATABASE IF EXISTS ${IDENT}`, "s"),
};

function literal(lit: string): string | null {
  if (lit === "NULL") return null;
  const e = lit.startsWith("E");
  const body = lit.slice(e ? 2 : 1, -1).replaceAll("''", "'");
  return e ? body.replaceAll("\\\\", "\\") : body;
}

/**
 * What Postgres would do with the plan's role and database statements, read from the SQL text
 * (not from the planner's own bookkeeping). Statements on objects in a state Postgres would
 * refuse (creating what exists, renaming what is missing) throw: they would fail the apply.
 */
function effect(before: CatalogSnapshot, plan: Plan): CatalogSnapshot {
  const roles = new Map([...before.roles].map(([k, v]) => [k, { ...v }]));
  const dbs = new Map([...before.databases].map(([k, v]) => [k, { ...v }]));
  const stmts = [...plan.main, ...plan.final].flatMap((p) => p.statements.map((s) => s.sql));
  for (const sql of stmts) {
    if (STMT.renameRole.test(sql)) {
      const m = sql.match(STMT.renameRole) ?? [];
      const [from, to] = [unquote(m[1] ?? ""), unquote(m[2] ?? "")];
      const r = roles.get(from);
      if (!r || roles.has(to)) throw new Error(`would fail: ${sql}`);
      roles.delete(from);
      const keeps = r.password?.startsWith("SCRAM-SHA-256") ?? false;
      roles.set(to, { name: to, password: keeps ? r.password : null });
    } else if (STMT.createRole.test(sql)) {
      const m = sql.match(STMT.createRole) ?? [];
      const name = unquote(m[1] ?? "");
      if (roles.has(name)) throw new Error(`would fail (exists): ${sql}`);
      roles.set(name, { name, password: literal(m[2] ?? "") });
    } else if (STMT.alterRole.test(sql)) {
      const m = sql.match(STMT.alterRole) ?? [];
      const name = unquote(m[1] ?? "");
      const r = roles.get(name);
      if (!r) throw new Error(`would fail (missing): ${sql}`);
      r.password = literal(m[2] ?? "");
    } else if (STMT.dropRole.test(sql)) {
      const m = sql.match(STMT.dropRole) ?? [];
      roles.delete(unquote(m[1] ?? ""));
    } else if (STMT.createDb.test(sql)) {
      const m = sql.match(STMT.createDb) ?? [];
      const name = unquote(m[1] ?? "");
      if (dbs.has(name)) throw new Error(`would fail (exists): ${sql}`);
      const owner = unquote(m[2] ?? "");
      dbs.set(name, { name, owner, restrictConn: false, invalid: false });
    } else if (STMT.renameDb.test(sql)) {
      const m = sql.match(STMT.renameDb) ?? [];
      const [from, to] = [unquote(m[1] ?? ""), unquote(m[2] ?? "")];
      const d = dbs.get(from);
      if (!d || dbs.has(to)) throw new Error(`would fail: ${sql}`);
      dbs.delete(from);
      dbs.set(to, { ...d, name: to });
    } else if (STMT.ownerDb.test(sql)) {
      const m = sql.match(STMT.ownerDb) ?? [];
      const d = dbs.get(unquote(m[1] ?? ""));
      if (!d) throw new Error(`would fail (missing): ${sql}`);
      d.owner = unquote(m[2] ?? "");
    } else if (STMT.dropDb.test(sql)) {
      const m = sql.match(STMT.dropDb) ?? [];
      dbs.delete(unquote(m[1] ?? ""));
    }
  }
  return { roles, databases: dbs, dropSubscriptionsDone: before.dropSubscriptionsDone };
}

/** The statements of a plan that create, alter, rename or drop a role or database that exists
 * (or would create one); DROP … IF EXISTS of an absent object is a no-op. */
function changes(before: CatalogSnapshot, plan: Plan): string[] {
  const stmts = [...plan.main, ...plan.final].flatMap((p) => p.statements.map((s) => s.sql));
  return stmts.filter((sql) => {
    const dropRole = sql.match(STMT.dropRole);
    if (dropRole) return before.roles.has(unquote(dropRole[1] ?? ""));
    const dropDb = sql.match(STMT.dropDb);
    if (dropDb) return before.databases.has(unquote(dropDb[1] ?? ""));
    return Object.values(STMT).some((re) => re.test(sql));
  });
}

/** Whether a delta operation deletes or renames away a role or database the spec also lists. */
function selfContradicting(spec: ComputeSpec): boolean {
  const roles = new Set(spec.cluster.roles.map((r) => r.name));
  const dbs = new Set(spec.cluster.databases.map((d) => d.name));
  return (spec.delta_operations ?? []).some((op) =>
    op.action === "delete_role" || op.action === "rename_role"
      ? roles.has(op.name)
      : dbs.has(op.name),
  );
}

const snapshotKey = (c: CatalogSnapshot) =>
  JSON.stringify([
    [...c.roles.values()].map((r) => [r.name, r.password]).sort(),
    [...c.databases.values()].map((d) => [d.name, d.owner]).sort(),
  ]);

type Outcome = "json" | "schema" | "spec" | "accepted";

describe(`spec fuzzing (seed ${SEED})`, () => {
  test(`${CASES} generated documents: refusals are clean, acceptances plan idempotently`, () => {
    const counts: Record<Outcome, number> = { json: 0, schema: 0, spec: 0, accepted: 0 };
    const protoKeys = Object.getOwnPropertyNames(Object.prototype).sort().join();
    for (let i = 0; i < CASES; i++) {
      const c = genCase(SEED, i);
      const where = `case ${i} (COMPUTE_CTL_TEST_SEED=${SEED}, mutations: ${c.mutations.join("; ") || "none"})`;
      let outcome: Outcome;
      try {
        outcome = check(c.text, where);
      } catch (err) {
        throw new Error(`${where}: ${(err as Error).message}\n${c.text.slice(0, 2000)}`, {
          cause: err,
        });
      }
      counts[outcome]++;
      if (Object.getOwnPropertyNames(Object.prototype).sort().join() !== protoKeys) {
        throw new Error(`${where}: Object.prototype was changed`);
      }
    }
    console.log(`spec fuzz outcomes: ${JSON.stringify(counts)}`);
    // The generator must keep exercising every path, or the properties above prove little.
    expect(counts.accepted).toBeGreaterThan(CASES / 5);
    expect(counts.schema).toBeGreaterThan(CASES / 10);
    if (CASES >= 1000) expect(counts.json).toBeGreaterThan(0);
  });
});

function check(text: string, where: string): Outcome {
  let body: ReturnType<typeof parseJson<typeof ConfigurationRequest>>;
  try {
    body = parseJson(ConfigurationRequest, text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) return oneLine(err, "json");
    if (err instanceof SchemaError) return oneLine(err, "schema");
    throw new Error(`the decoder threw ${(err as Error).name}: ${(err as Error).message}`);
  }
  // Stable: what was accepted decodes to itself (integers beyond 2^53 are doubles once decoded,
  // by the documented rule, so a document holding one is not expected to round-trip).
  if (!hasUnsafeInteger(body)) {
    const again = parseJson(ConfigurationRequest, serialize(body));
    expect(again).toEqual(body);
  }
  if (body.spec === null) return "accepted";
  let timelineId: string;
  try {
    timelineId = parseSpec(body.spec, { privilegedRoleName: OPTS.privilegedRoleName }).timelineId;
  } catch (err) {
    if (err instanceof SchemaError || err instanceof JsonSyntaxError || !(err instanceof Error)) {
      throw new Error(`parseSpec threw ${String(err)}`);
    }
    return oneLine(err, "spec");
  }
  const spec = body.spec;
  const start = freshCatalog();
  const opts = { ...OPTS, timelineId };
  const first = planSpec(start, spec, opts);
  const after = effect(start, first);
  for (const role of spec.cluster.roles) {
    const got = after.roles.get(role.name);
    if (!got) throw new Error(`role ${JSON.stringify(role.name)} missing after the first apply`);
    expect(got.password).toBe(storedPassword(role.encrypted_password));
  }
  for (const db of spec.cluster.databases) {
    const got = after.databases.get(db.name);
    if (!got) throw new Error(`database ${JSON.stringify(db.name)} missing after the first apply`);
    expect(got.owner).toBe(db.owner);
  }
  // Delta operations run on every apply. One that deletes or renames away an object the spec's
  // lists also name undoes what the same apply creates, so such a spec changes the catalog on
  // every apply by its own terms: the reference plans it the same way.
  if (selfContradicting(spec)) return "accepted";
  const second = planSpec(after, spec, opts);
  const changed = changes(after, second);
  if (changed.length > 0) {
    throw new Error(`${where}: the second plan still changes the catalog: ${changed.join(" | ")}`);
  }
  expect(snapshotKey(effect(after, second))).toBe(snapshotKey(after));
  return "accepted";
}

function oneLine(err: Error, outcome: Outcome): Outcome {
  if (err.message.includes("\n") || err.message.includes("\r") || err.message === "") {
    throw new Error(`a refusal's message is not one line: ${JSON.stringify(err.message)}`);
  }
  return outcome;
}

function hasUnsafeInteger(v: unknown): boolean {
  if (typeof v === "number") return Number.isInteger(v) && !Number.isSafeInteger(v);
  if (v !== null && typeof v === "object") return Object.values(v).some(hasUnsafeInteger);
  return false;
}
