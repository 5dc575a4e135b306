// GET /dbs_and_roles and GET /database_schema in-process against a real Postgres 15, with the
// tricky role and database names of the reference's test_compute_catalog.py.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHttpApp } from "../../../src/http/app.ts";
import { catalogRoutes, databaseParam } from "../../../src/http/routes/catalog.ts";
import { log } from "../../../src/log.ts";
import { postgresErrorText } from "../../../src/postgres/errors.ts";
import { pgDumpTarget } from "../../../src/postgres/schema-dump.ts";
import { pgQuote } from "../../../src/spec/quote.ts";
import { PG_BINDIR, startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { freePort } from "../../support/ports.ts";
import { cleanup, waitFor } from "../../support/proc.ts";

setDefaultTimeout(60_000);

const PG_DUMP = `${PG_BINDIR}/pg_dump`;

// Role names, and for each a database owned by it (the reference test's pairs).
const TRICKY: { role: string; db: string }[] = [
  { role: "neondb_owner", db: "neondb" },
  { role: "role with spaces", db: "db with spaces" },
  { role: "role with%20spaces ", db: "db with%20spaces " },
  { role: "role with whitespaces\t", db: "db with whitespaces\t" },
  {
    role: "injective role with spaces'; SELECT pg_sleep(1000);",
    db: "injective db with spaces'; SELECT pg_sleep(1000);",
  },
  {
    role: "role with #pound-sign and &ampersands=true",
    db: "db with #pound-sign and &ampersands=true",
  },
  { role: "role with emoji 🌍", db: "db with emoji 🌍" },
  {
    role: "role \";with ';injections $$ $x$ $ %I !/\\&#@",
    db: "db \";with ';injections $$ $x$ $ %I !/\\&#@",
  },
  { role: '"role in double quotes"', db: '"db in double quotes"' },
  { role: "'role in single quotes'", db: "'db in single quotes'" },
  { role: "role$", db: "db name$" },
  { role: "role$$", db: "db name$$" },
  { role: "$x$", db: "$x$" },
  { role: "x".repeat(63), db: "y".repeat(63) },
];

let pg: TestPostgres;
let app: ReturnType<typeof makeApp>;

function makeApp(connstr: string, pgDump = PG_DUMP) {
  return createHttpApp({ name: "external", logger: log }).use(
    catalogRoutes({ connstr: new URL(connstr), pgDump }),
  );
}

const get = (path: string, a: { handle(r: Request): Promise<Response> } = app) =>
  a.handle(new Request(`http://localhost${path}`));

const schemaPath = (db: string) => `/database_schema?database=${encodeURIComponent(db)}`;

async function expectError(r: Response, status: number, error: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toBe("application/json");
  expect(await r.json()).toEqual({ error });
}

beforeAll(async () => {
  pg = await startTestPostgres();
  for (const { role, db } of TRICKY) {
    await pg.sql.unsafe(`CREATE ROLE ${pgQuote(role)}`);
    await pg.sql.unsafe(`CREATE DATABASE ${pgQuote(db)} OWNER ${pgQuote(role)}`);
  }
  await pg.sql.unsafe("CREATE ROLE with_password LOGIN PASSWORD 'secret'");
  await pg.sql.unsafe("CREATE DATABASE closed_db");
  await pg.sql.unsafe("ALTER DATABASE closed_db ALLOW_CONNECTIONS false");
  await pg.sql.unsafe("CREATE DATABASE invalid_db");
  // What an interrupted DROP DATABASE leaves behind (PG ≥ 15.4 marks it with -2).
  await pg.sql.unsafe(
    "UPDATE pg_catalog.pg_database SET datconnlimit = -2 WHERE datname = 'invalid_db'",
  );
  // Only in `postgres`: a dump of another database must not contain it.
  await pg.sql.unsafe("CREATE TABLE public.health_check (id int primary key)");
  app = makeApp(pg.url);
});

afterAll(async () => {
  await pg?.stop();
  await cleanup();
});

describe("GET /dbs_and_roles", () => {
  test("lists every role from pg_authid and every database, with the reference's shape", async () => {
    const r = await get("/dbs_and_roles");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/json");
    const body = (await r.json()) as {
      roles: { name: string; encrypted_password: string | null; options: null }[];
      databases: {
        name: string;
        owner: string;
        options: null;
        restrict_conn: boolean;
        invalid: boolean;
      }[];
    };
    expect(Object.keys(body)).toEqual(["roles", "databases"]);
    for (const role of body.roles) {
      expect(Object.keys(role)).toEqual(["name", "encrypted_password", "options"]);
    }
    for (const db of body.databases) {
      expect(Object.keys(db)).toEqual(["name", "owner", "options", "restrict_conn", "invalid"]);
    }
    const roles = new Map(body.roles.map((x) => [x.name, x]));
    expect(roles.get("cloud_admin")).toEqual({
      name: "cloud_admin",
      encrypted_password: null,
      options: null,
    });
    // Built-in roles are included, as the reference reads pg_authid unfiltered.
    expect(roles.has("pg_read_all_data")).toBe(true);
    expect(roles.get("with_password")?.encrypted_password).toMatch(/^SCRAM-SHA-256\$/);
    const dbs = new Map(body.databases.map((x) => [x.name, x]));
    expect(dbs.get("postgres")).toEqual({
      name: "postgres",
      owner: "cloud_admin",
      options: null,
      restrict_conn: false,
      invalid: false,
    });
    expect(dbs.get("template0")?.restrict_conn).toBe(true);
    expect(dbs.get("closed_db")?.restrict_conn).toBe(true);
    expect(dbs.get("invalid_db")?.invalid).toBe(true);
    expect(dbs.get("invalid_db")?.restrict_conn).toBe(false);
    for (const { role, db } of TRICKY) {
      expect(roles.get(role)).toEqual({ name: role, encrypted_password: null, options: null });
      expect(dbs.get(db)).toEqual({
        name: db,
        owner: role,
        options: null,
        restrict_conn: false,
        invalid: false,
      });
    }
  });

  test("500 with the connect error when Postgres is not there", async () => {
    const port = await freePort();
    const down = makeApp(`postgresql://cloud_admin@127.0.0.1:${port}/postgres`);
    await expectError(
      await get("/dbs_and_roles", down),
      500,
      "error connecting to server: Connection refused (os error 111)",
    );
  });
});

describe("GET /database_schema", () => {
  test("dumps the schema of each tricky-named database, streamed as application/json", async () => {
    await Promise.all(
      TRICKY.map(async ({ db }) => {
        const sql = pg.connect({ database: db });
        try {
          await sql.unsafe("CREATE TABLE public.only_here (id int)");
        } finally {
          await sql.end();
        }
      }),
    );
    for (const { db } of TRICKY) {
      const r = await get(schemaPath(db));
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("application/json");
      const text = await r.text();
      expect(text).toContain("-- PostgreSQL database dump complete");
      expect(text).toContain("CREATE TABLE public.only_here");
      expect(text).not.toContain("health_check");
    }
    const own = await (await get(schemaPath("postgres"))).text();
    expect(own).toContain("CREATE TABLE public.health_check");
  });

  test("a large dump arrives in several chunks and leaves no pg_dump behind", async () => {
    await pg.sql.unsafe("CREATE DATABASE big");
    const sql = pg.connect({ database: "big" });
    try {
      await sql.unsafe(
        "DO $$ BEGIN FOR i IN 1..1500 LOOP EXECUTE format('CREATE TABLE public.t%s (a int, b text, c timestamptz)', i); END LOOP; END $$",
      );
    } finally {
      await sql.end();
    }
    const r = await get(schemaPath("big"));
    expect(r.status).toBe(200);
    let chunks = 0;
    let bytes = 0;
    for await (const chunk of r.body as ReadableStream<Uint8Array>) {
      chunks++;
      bytes += chunk.byteLength;
    }
    expect(bytes).toBeGreaterThan(100_000);
    expect(chunks).toBeGreaterThan(1);

    // A client that goes away after the first chunk: pg_dump must not linger.
    const r2 = await get(schemaPath("big"));
    const reader = (r2.body as ReadableStream<Uint8Array>).getReader();
    expect((await reader.read()).done).toBe(false);
    await reader.cancel();
    await waitFor(
      async () =>
        (
          await pg.sql`SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity WHERE application_name = 'pg_dump'`
        )[0]!.n === 0,
      { what: "pg_dump's session to end", timeoutMs: 10_000 },
    );
  });

  test("404 for a database that does not exist, whatever its name", async () => {
    for (const name of ["nonexistent", 'no "such" db', "nö 🌍 db", "a=b c"]) {
      await expectError(await get(schemaPath(name)), 404, "database does not exist");
    }
  });

  test("400 without the database parameter, as the reference's query rejection", async () => {
    for (const path of ["/database_schema", "/database_schema?db=postgres", "/database_schema?"]) {
      await expectError(
        await get(path),
        400,
        "failed to deserialize query string: missing field `database`",
      );
    }
    await expectError(
      await get("/database_schema?database=a&database=b"),
      400,
      "failed to deserialize query string: duplicate field `database`",
    );
  });

  test("500 when pg_dump cannot run or cannot connect", async () => {
    const noDump = makeApp(pg.url, "/nonexistent/bin/pg_dump");
    await expectError(await get(schemaPath("postgres"), noDump), 500, "failed to execute pg_dump");
    const port = await freePort();
    const down = makeApp(`postgresql://cloud_admin@127.0.0.1:${port}/postgres`);
    await expectError(await get(schemaPath("postgres"), down), 500, "failed to execute pg_dump");
  });

  test("works over the unix socket when the connstr names a socket directory", async () => {
    const viaSocket = makeApp(
      `postgresql://cloud_admin@${encodeURIComponent(pg.socketDir)}:${pg.port}/postgres`,
    );
    const r = await get(schemaPath("neondb"), viaSocket);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain("-- PostgreSQL database dump complete");
  });
});

describe("helpers", () => {
  test("databaseParam decodes form encoding", () => {
    expect(databaseParam("http://x/database_schema?database=a+b%3Dc")).toBe("a b=c");
    expect(databaseParam("http://x/database_schema?database=")).toBe("");
  });

  test("pgDumpTarget reads host, port and user as libpq would", () => {
    expect(pgDumpTarget(new URL("postgresql://cloud_admin@127.0.0.1:55432/postgres"))).toEqual({
      host: "127.0.0.1",
      port: "55432",
      user: "cloud_admin",
    });
    expect(pgDumpTarget(new URL("postgresql://u%40x@[::1]/db"))).toEqual({
      host: "::1",
      port: "5432",
      user: "u@x",
    });
    expect(pgDumpTarget(new URL("postgresql:///db?host=/run/pg&port=6000&user=me"))).toEqual({
      host: "/run/pg",
      port: "6000",
      user: "me",
    });
    expect(() => pgDumpTarget(new URL("postgresql://127.0.0.1/db"))).toThrow(
      "unexpected I/O error",
    );
  });

  test("postgresErrorText renders like tokio-postgres", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
      code: "ECONNREFUSED",
    });
    expect(postgresErrorText(refused)).toBe(
      "error connecting to server: Connection refused (os error 111)",
    );
    expect(postgresErrorText(new Error("other"))).toBe("other");
  });
});
