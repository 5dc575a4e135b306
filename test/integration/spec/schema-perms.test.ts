// The per-database public-schema phase (owner hand-over, web_access's CREATE, default
// privileges) runs only where it would change something. Each case changes a database's public
// schema behind compute_ctl's back, in two twin databases: in one, the phase's own statements are
// then run unconditionally (what every apply did before the phase could be left out), and the
// next apply must leave the other one exactly like it. The server logs every statement, so which
// databases the apply touched is read from Postgres, not from the plan.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decode } from "../../../src/api/decode.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { applySpecSql } from "../../../src/spec/apply.ts";
import { databaseClient } from "../../../src/spec/execute.ts";
import { defaultGrants, setPublicSchemaOwner } from "../../../src/spec/sql.ts";
import { installNeonStub } from "../../support/neon-stub.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { cleanup } from "../../support/proc.ts";

const stub = installNeonStub();
if (!stub.installed) console.warn(`skipping the public-schema tests: ${stub.reason}`);
const it = stub.installed ? test : test.skip;

const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";
const PRIV = "neon_superuser";
const APP = "compute_ctl:apply_config";
const PREFIX = "@@";

async function logged(): Promise<TestPostgres> {
  return startTestPostgres({
    settings: {
      log_statement: "all",
      logging_collector: "off",
      log_line_prefix: `${PREFIX}%a|%d|`,
    },
  });
}

/** The statements `application` ran, in the order they started, whitespace collapsed. */
function statementsInOrder(log: string, application = APP): { db: string; sql: string }[] {
  const out: { db: string; sql: string }[] = [];
  for (const entry of log.split(new RegExp(`^(?=${PREFIX})`, "m"))) {
    const m = entry.match(/^@@([^|]*)\|([^|]*)\|LOG: {2}statement: ([\s\S]*)$/);
    if (!m || m[1] !== application) continue;
    out.push({ db: m[2]!, sql: m[3]!.replace(/\s+/g, " ").trim() });
  }
  return out;
}

/** Per database: the statements `application` ran there, in order. */
function statementsByDatabase(log: string, application = APP): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const { db, sql } of statementsInOrder(log, application)) {
    const list = out.get(db) ?? [];
    list.push(sql);
    out.set(db, list);
  }
  return out;
}

/** The databases where the apply ran anything beyond its read of the public schema. */
function writtenDatabases(log: string): string[] {
  const out: string[] = [];
  for (const [db, stmts] of statementsByDatabase(log)) {
    if (db === "postgres") continue;
    if (stmts.some((s) => !s.startsWith("WITH me AS ("))) out.push(db);
  }
  return out.sort();
}

/** The public schema's owner and ACL and every default ACL of one database, as text. */
async function schemaState(pg: TestPostgres, db: string): Promise<string> {
  return pg.psql(
    `SELECT coalesce((SELECT nspowner::regrole::text || ' ' || coalesce(nspacl::text, '-')
        FROM pg_namespace WHERE nspname = 'public'), 'no public')
      || ' | ' || coalesce((SELECT string_agg(x, '; ' ORDER BY x) FROM (
        SELECT defaclrole::regrole::text || ' ' || coalesce(defaclnamespace::regnamespace::text, '-')
          || ' ' || defaclobjtype::text || ' ' || defaclacl::text AS x FROM pg_default_acl) d), '')`,
    db,
  );
}

/** The phase's statements as every apply used to run them, on a connection like the apply's. */
async function runPhaseUnconditionally(pg: TestPostgres, db: string, owner: string) {
  const sql = databaseClient(new URL(pg.url), db, "test:oracle");
  try {
    await sql.unsafe(setPublicSchemaOwner(owner)).simple();
    await sql.unsafe(defaultGrants(PRIV)).simple();
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Waits until the server log has the apply's last statement (it writes asynchronously). */
async function logSince(pg: TestPostgres, from: number): Promise<string> {
  await pg.sql`SELECT 'log-barrier'`;
  for (let i = 0; i < 100; i++) {
    const text = pg.serverLog!.text.slice(from);
    if (text.includes("log-barrier")) return text;
    await Bun.sleep(50);
  }
  throw new Error("the server log did not catch up");
}

function spec(roles: string[], databases: string[]): ComputeSpec {
  return decode(ComputeSpec, {
    format_version: 1.0,
    suspend_timeout_seconds: -1,
    cluster: {
      roles: roles.map((name) => ({ name, encrypted_password: null })),
      databases: databases.map((name) => ({ name, owner: "alice" })),
    },
  });
}

interface Case {
  name: string;
  /** Run as the bootstrap superuser in the database. */
  change: string;
  /** The apply after the change must run the phase there. */
  repairs: boolean;
}

const CASES: Case[] = [
  { name: "owner cloud_admin", change: "ALTER SCHEMA public OWNER TO cloud_admin", repairs: true },
  {
    name: "owner zenith_admin",
    change: "ALTER SCHEMA public OWNER TO zenith_admin",
    repairs: true,
  },
  { name: "owner bob", change: "ALTER SCHEMA public OWNER TO bob", repairs: false },
  {
    name: "table defaults revoked",
    change: `ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM ${PRIV}`,
    repairs: true,
  },
  {
    name: "one sequence grant option revoked",
    change: `ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE GRANT OPTION FOR UPDATE ON SEQUENCES FROM ${PRIV}`,
    repairs: true,
  },
  {
    name: "one table privilege revoked",
    change: `ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE TRUNCATE ON TABLES FROM ${PRIV}`,
    repairs: true,
  },
  {
    name: "defaults moved to another role",
    change: `ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM ${PRIV};
      ALTER DEFAULT PRIVILEGES FOR ROLE alice IN SCHEMA public GRANT ALL ON TABLES TO ${PRIV} WITH GRANT OPTION`,
    repairs: true,
  },
  {
    name: "unrelated default privileges added",
    change:
      "ALTER DEFAULT PRIVILEGES FOR ROLE alice IN SCHEMA public GRANT SELECT ON TABLES TO bob; ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON SEQUENCES TO bob",
    repairs: false,
  },
  {
    name: "web_access CREATE revoked",
    change: "REVOKE CREATE ON SCHEMA public FROM web_access",
    repairs: true,
  },
  {
    name: "web_access CREATE only from another grantor",
    change: `REVOKE CREATE ON SCHEMA public FROM web_access;
      GRANT CREATE ON SCHEMA public TO bob WITH GRANT OPTION;
      SET ROLE bob; GRANT CREATE ON SCHEMA public TO web_access; RESET ROLE`,
    repairs: true,
  },
  {
    name: "web_access given more than CREATE",
    change: "GRANT USAGE, CREATE ON SCHEMA public TO web_access WITH GRANT OPTION",
    repairs: false,
  },
  { name: "public dropped", change: "DROP SCHEMA public CASCADE", repairs: false },
  {
    name: "public recreated by the admin",
    change: "DROP SCHEMA public CASCADE; CREATE SCHEMA public",
    repairs: true,
  },
];

const twin = (i: number, side: "a" | "b") => `case ${i} ${side}`;

describe("the public-schema phase", () => {
  let pg: TestPostgres;
  beforeAll(async () => {
    if (!stub.installed) return;
    pg = await logged();
    // zenith_admin is an owner the phase hands over from, as cloud_admin is.
    await pg.sql`CREATE ROLE zenith_admin SUPERUSER`;
  });
  afterAll(async () => {
    await pg?.stop();
    await cleanup();
  });

  it("an out-of-band change is repaired exactly as an unconditional run would; nothing else is touched", async () => {
    const dbs = ["untouched", ...CASES.flatMap((_, i) => [twin(i, "a"), twin(i, "b")])];
    const s = spec(["alice", "bob", "web_access"], dbs);
    const apply = () =>
      applySpecSql(s, {
        connstr: new URL(pg.url),
        privilegedRoleName: PRIV,
        timelineId: TIMELINE,
        concurrency: 3,
      });
    await apply();
    const fresh = await schemaState(pg, "untouched");
    // The first apply did its work: web_access may create in public, the defaults are complete.
    expect(fresh).toContain("web_access=C/pg_database_owner");
    expect(fresh).toContain(`cloud_admin public r {${PRIV}=a*r*w*d*D*x*t*/cloud_admin}`);
    expect(fresh).toContain(`cloud_admin public S {${PRIV}=r*w*U*/cloud_admin}`);

    // An unchanged spec applied again writes in no user database.
    let from = pg.serverLog!.text.length;
    await apply();
    let log = await logSince(pg, from);
    expect(writtenDatabases(log)).toEqual([]);
    // Each user database got exactly one read, and the system database no public-schema block.
    const reads = statementsByDatabase(log);
    for (const db of dbs) expect(reads.get(db)?.length).toBe(1);
    expect(reads.get("postgres")!.join("\n")).not.toContain("ALTER DEFAULT PRIVILEGES");

    for (const [i, c] of CASES.entries()) {
      for (const side of ["a", "b"] as const) await pg.psql(c.change, twin(i, side));
      await runPhaseUnconditionally(pg, twin(i, "b"), "alice");
    }
    from = pg.serverLog!.text.length;
    await apply();
    log = await logSince(pg, from);
    const written = writtenDatabases(log);
    for (const [i, c] of CASES.entries()) {
      const [a, b] = [await schemaState(pg, twin(i, "a")), await schemaState(pg, twin(i, "b"))];
      expect({ case: c.name, state: a }).toEqual({ case: c.name, state: b });
      expect({ case: c.name, repaired: written.includes(twin(i, "a")) }).toEqual({
        case: c.name,
        repaired: c.repairs,
      });
    }
    // The twins already run unconditionally need nothing more, nor does the untouched one.
    expect(written.filter((db) => !db.endsWith(" a"))).toEqual([]);
    expect(await schemaState(pg, "untouched")).toBe(fresh);

    // Repaired, they converge: the next apply writes nowhere.
    from = pg.serverLog!.text.length;
    await apply();
    expect(writtenDatabases(await logSince(pg, from))).toEqual([]);
  }, 120_000);
});

describe("web_access", () => {
  let pg: TestPostgres;
  beforeAll(async () => {
    if (!stub.installed) return;
    pg = await logged();
  });
  afterAll(async () => {
    await pg?.stop();
    await cleanup();
  });

  it("created between applies (not by the spec): every database grants it CREATE on the next apply", async () => {
    const s = spec(["alice"], ["one", "two"]);
    const apply = () =>
      applySpecSql(s, {
        connstr: new URL(pg.url),
        privilegedRoleName: PRIV,
        timelineId: TIMELINE,
        concurrency: 2,
      });
    await apply();
    expect(await schemaState(pg, "one")).not.toContain("web_access");
    await pg.sql`CREATE ROLE web_access`;
    const from = pg.serverLog!.text.length;
    await apply();
    expect(writtenDatabases(await logSince(pg, from))).toEqual(["one", "two"]);
    for (const db of ["one", "two"]) {
      expect(await schemaState(pg, db)).toContain("web_access=C/pg_database_owner");
    }
  }, 60_000);
});

describe("web_access in the spec", () => {
  let pg: TestPostgres;
  beforeAll(async () => {
    if (!stub.installed) return;
    pg = await logged();
  });
  afterAll(async () => {
    await pg?.stop();
    await cleanup();
  });

  it("listed by the spec for the first time: granted in databases that already existed", async () => {
    await pg.sql`CREATE DATABASE three OWNER cloud_admin`;
    const first = spec(["alice"], ["three"]);
    const opts = {
      connstr: new URL(pg.url),
      privilegedRoleName: PRIV,
      timelineId: TIMELINE,
      concurrency: 1,
    };
    await applySpecSql(first, opts);
    expect(await schemaState(pg, "three")).not.toContain("web_access");
    await applySpecSql(spec(["alice", "web_access"], ["three"]), opts);
    expect(await schemaState(pg, "three")).toContain("web_access=C/pg_database_owner");
  }, 60_000);
});

describe("databases created by the apply", () => {
  let pg: TestPostgres;
  beforeAll(async () => {
    if (!stub.installed) return;
    pg = await logged();
  });
  afterAll(async () => {
    await pg?.stop();
    await cleanup();
  });

  it("each gets its public-schema work, connected only after its creation, in one session", async () => {
    const names = Array.from({ length: 12 }, (_, i) => `new ${i}`);
    const from = pg.serverLog!.text.length;
    await applySpecSql(spec(["alice", "web_access"], names), {
      connstr: new URL(pg.url),
      privilegedRoleName: PRIV,
      timelineId: TIMELINE,
      concurrency: 4,
    });
    const byDb = statementsByDatabase(await logSince(pg, from));
    for (const db of names) {
      expect(await schemaState(pg, db)).toContain("web_access=C/pg_database_owner");
      // No read first (the database did not exist), then the phase in one session.
      expect(byDb.get(db)?.map((s) => s.slice(0, 29))).toEqual([
        "SET neon.forward_ddl = false",
        "DO $xx$ DECLARE current_owner",
        "DO $$ BEGIN IF NOT EXISTS (SE",
      ]);
    }
  }, 60_000);

  it("a database copied from another created by the same apply (TEMPLATE): tasks wait for the copies", async () => {
    const s = decode(ComputeSpec, {
      format_version: 1.0,
      suspend_timeout_seconds: -1,
      cluster: {
        roles: [{ name: "alice", encrypted_password: null }],
        databases: [
          { name: "source", owner: "alice" },
          ...Array.from({ length: 6 }, (_, i) => ({
            name: `copy ${i}`,
            owner: "alice",
            options: [{ name: "TEMPLATE", value: "source", vartype: "string" }],
          })),
        ],
      },
    });
    const from = pg.serverLog!.text.length;
    await applySpecSql(s, {
      connstr: new URL(pg.url),
      privilegedRoleName: PRIV,
      timelineId: TIMELINE,
      concurrency: 4,
    });
    expect(await schemaState(pg, "copy 5")).toContain(`${PRIV}=a*r*w*d*D*x*t*/cloud_admin`);
    // CREATE DATABASE … TEMPLATE waits for (or, after 5 s, fails on) sessions in its source, so
    // no database task starts before the last copy was made.
    const order = statementsInOrder(await logSince(pg, from));
    const lastCreate = order.findLastIndex((x) => x.sql.startsWith("CREATE DATABASE"));
    const firstTask = order.findIndex((x) => x.db !== "postgres");
    expect(lastCreate).toBeGreaterThan(0);
    expect(firstTask).toBeGreaterThan(lastCreate);
  }, 60_000);
});
