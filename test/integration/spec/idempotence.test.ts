// A second apply of an unchanged spec, as Postgres saw it: the server runs with
// log_statement=all and its stderr is the log, so every statement compute_ctl sent is compared
// with the list below, written by hand. What a no-op apply still runs: the catalog reads (one
// query per user database, on a connection that runs nothing else), the guarded privileged-role
// block, `CREATE SCHEMA IF NOT EXISTS neon`, the neon extension statements and the health-check
// block. No ALTER ROLE: md5 and SCRAM passwords are compared in their stored form, so unchanged
// roles are left alone; no CREATE/ALTER of an existing database; and no public-schema block in a
// database whose public schema already has its owner and privileges.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { decode } from "../../../src/api/decode.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { applySpecSql } from "../../../src/spec/apply.ts";
import { installNeonStub } from "../../support/neon-stub.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { cleanup, waitFor } from "../../support/proc.ts";

const stub = installNeonStub();
if (!stub.installed) console.warn(`skipping the idempotence test: ${stub.reason}`);
const it = stub.installed ? test : test.skip;

const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";
// A marker that starts every log entry: application, database, session.
const PREFIX = "@@";

let pg: TestPostgres;

beforeAll(async () => {
  if (!stub.installed) return;
  pg = await startTestPostgres({
    settings: {
      log_statement: "all",
      logging_collector: "off",
      log_line_prefix: `${PREFIX}%a|%d|%c|`,
    },
  });
});
afterAll(async () => {
  await pg?.stop();
  await cleanup();
});

const md5 = (password: string, user: string) =>
  new Bun.CryptoHasher("md5").update(password + user).digest("hex");

interface Session {
  database: string;
  statements: string[];
}

/** Statements logged by `application` in `log`, per session, whitespace collapsed. */
function sessions(log: string, application: string): Session[] {
  const bySession = new Map<string, Session>();
  // An entry runs from one prefixed line to the next (a statement may span lines).
  for (const entry of log.split(new RegExp(`^(?=${PREFIX})`, "m"))) {
    const m = entry.match(/^@@([^|]*)\|([^|]*)\|([^|]*)\|LOG: {2}statement: ([\s\S]*)$/);
    if (!m || m[1] !== application) continue;
    const [, , database = "", session = ""] = m;
    const s = bySession.get(session) ?? { database, statements: [] };
    s.statements.push((m[4] ?? "").replace(/\s+/g, " ").trim());
    bySession.set(session, s);
  }
  return [...bySession.values()].sort((a, b) => a.database.localeCompare(b.database));
}

/** A hand-written expectation: an exact statement, or a prefix ending in `…`. */
function matches(actual: string, expected: string): boolean {
  return expected.endsWith("…") ? actual.startsWith(expected.slice(0, -1)) : actual === expected;
}

// The DO blocks are identified by their opening (their full text is unit-tested elsewhere).
const PRIVILEGED_ROLE =
  "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'neon_superuser'::pg_catalog.name) THEN CREATE ROLE neon_superuser …";
// The per-database read of the public schema (its full text is in src/spec/catalog.ts).
const PUBLIC_SCHEMA_READ =
  "WITH me AS ( SELECT oid, rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER ), priv AS …";
const HEALTH_CHECK =
  "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname OPERATOR(pg_catalog.=) 'public'::pg_catalog.name AND tablename OPERATOR(pg_catalog.=) 'health_check'::pg_catalog.name) THEN …";

const perDatabase = (database: string): Session => ({
  database,
  statements: [PUBLIC_SCHEMA_READ],
});

const EXPECTED: Session[] = [
  perDatabase("app"),
  perDatabase("data db"),
  // The maintenance session reads roles and databases, and is closed while the user databases
  // are read; a new one runs the rest.
  {
    database: "postgres",
    statements: [
      "SET neon.forward_ddl = false",
      "SELECT rolname, rolpassword FROM pg_catalog.pg_authid",
      "SELECT d.datname, (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) d.datdba) AS owner, NOT d.datallowconn AS restrict_conn, d.datconnlimit OPERATOR(pg_catalog.=) (OPERATOR(pg_catalog.-) 2) AS invalid FROM pg_catalog.pg_database d",
    ],
  },
  {
    database: "postgres",
    statements: [
      "SET neon.forward_ddl = false",
      PRIVILEGED_ROLE,
      "CREATE SCHEMA IF NOT EXISTS neon",
      "CREATE EXTENSION IF NOT EXISTS neon WITH SCHEMA neon",
      "UPDATE pg_catalog.pg_extension SET extrelocatable = true WHERE extname OPERATOR(pg_catalog.=) 'neon'::pg_catalog.name AND extrelocatable OPERATOR(pg_catalog.=) false",
      "ALTER EXTENSION neon SET SCHEMA neon",
      "ALTER EXTENSION neon UPDATE",
      HEALTH_CHECK,
    ],
  },
];

it("a second apply of the same spec runs exactly the expected statements", async () => {
  const scram = await (async () => {
    await pg.sql.unsafe("SET password_encryption = 'scram-sha-256'; CREATE ROLE tmp PASSWORD 'x'");
    const [row] = await pg.sql`SELECT rolpassword FROM pg_authid WHERE rolname = 'tmp'`;
    await pg.sql`DROP ROLE tmp`;
    return row!.rolpassword as string;
  })();
  const spec = decode(ComputeSpec, {
    format_version: 1.0,
    suspend_timeout_seconds: -1,
    cluster: {
      roles: [
        { name: "alice", encrypted_password: md5("pw", "alice") },
        { name: "xavier", encrypted_password: scram },
        { name: "nopass", encrypted_password: null },
      ],
      databases: [
        { name: "app", owner: "alice" },
        { name: "data db", owner: "xavier" },
      ],
    },
  });
  const apply = () =>
    applySpecSql(spec, {
      connstr: new URL(pg.url),
      privilegedRoleName: "neon_superuser",
      timelineId: TIMELINE,
      concurrency: 4,
    });
  const log = pg.serverLog!;
  await apply();
  const from = log.text.length;
  await apply();
  // The server writes its log asynchronously: wait until the last statement of each session is in.
  const expectedCount = EXPECTED.reduce((n, s) => n + s.statements.length, 0);
  const second = await waitFor(
    () => {
      const got = sessions(log.text.slice(from), "compute_ctl:apply_config");
      return got.reduce((n, s) => n + s.statements.length, 0) >= expectedCount ? got : undefined;
    },
    { what: "the second apply's statements in the server log", timeoutMs: 10_000 },
  );
  await Bun.sleep(200);
  const final = sessions(log.text.slice(from), "compute_ctl:apply_config");
  expect(final).toEqual(second);
  expect(final.map((s) => s.database)).toEqual(EXPECTED.map((s) => s.database));
  for (const [i, s] of final.entries()) {
    const want = EXPECTED[i]!.statements;
    const ok =
      s.statements.length === want.length && s.statements.every((a, j) => matches(a, want[j]!));
    if (!ok) {
      // Shown in full on failure, side by side.
      expect({ database: s.database, statements: s.statements }).toEqual({
        database: s.database,
        statements: want,
      });
    }
  }
  // Nothing that would change a role or a database on the second run.
  const all = final.flatMap((s) => s.statements).join("\n");
  expect(all).not.toMatch(/^(ALTER ROLE|CREATE ROLE|CREATE DATABASE|ALTER DATABASE)/m);
}, 60_000);
