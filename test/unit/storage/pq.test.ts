import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { PqConnection, PqError, parseConnstring } from "../../../src/storage/pq.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { cleanup } from "../../support/proc.ts";

describe("parseConnstring", () => {
  test("URL with credentials, port, database and params", () => {
    expect(
      parseConnstring(
        "postgresql://us%40er:p%3Ass@db.example:6400/my%20db?application_name=x&options=-c%20a%3Db",
      ),
    ).toEqual({
      host: "db.example",
      port: 6400,
      user: "us@er",
      password: "p:ss",
      database: "my db",
      applicationName: "x",
      options: "-c a=b",
    });
  });

  test("the reference's storage URLs: no database, port 5432 by default", () => {
    expect(parseConnstring("postgres://no_user@pageserver-0")).toEqual({
      host: "pageserver-0",
      port: 5432,
      user: "no_user",
      password: null,
      database: null,
      applicationName: null,
      options: null,
    });
    expect(parseConnstring("postgresql://no_user@[::1]:6400").host).toBe("::1");
    expect(parseConnstring("postgresql://no_user@[::1]:6400").port).toBe(6400);
  });

  test("without a user, the OS user (as tokio-postgres's whoami)", () => {
    const { userInfo } = require("node:os") as typeof import("node:os");
    expect(parseConnstring("postgresql://h:1").user).toBe(userInfo().username);
  });

  test("key=value with quotes, escapes and spaces around =", () => {
    expect(
      parseConnstring(
        "host=h port = 7 user=u password='it\\'s a secret' dbname=d\\ b options='-c x=1 -c y=2'",
      ),
    ).toEqual({
      host: "h",
      port: 7,
      user: "u",
      password: "it's a secret",
      database: "d b",
      applicationName: null,
      options: "-c x=1 -c y=2",
    });
  });

  test("errors as tokio-postgres: unknown keys, unterminated quotes, no host, bad port", () => {
    expect(() => parseConnstring("host=h bogus=1")).toThrow(/unknown option `bogus`/);
    expect(() => parseConnstring("host=h password='x")).toThrow(/unterminated/);
    expect(() => parseConnstring("user=u")).toThrow(/no host/);
    expect(() => parseConnstring("host=h port=x")).toThrow(/port/);
    expect(() => parseConnstring("postgresql://h/?sslmode=require")).toThrow(/TLS/);
  });
});

describe("PqConnection against a raw socket", () => {
  test("connection refused is an Error with a cause", async () => {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = l.port;
    l.stop(true);
    const err = await PqConnection.connect({ host: "127.0.0.1", port, user: "u" }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain(`could not connect to 127.0.0.1:${port}`);
    expect(err.cause).toBeDefined();
  });

  test("a server that never answers hits the connect timeout", async () => {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const t0 = performance.now();
      const err = await PqConnection.connect({
        host: "127.0.0.1",
        port: l.port,
        user: "u",
        timeoutMs: 150,
      }).catch((e) => e);
      expect(err.message).toMatch(/timed out after 150 ms/);
      expect(performance.now() - t0).toBeLessThan(2000);
    } finally {
      l.stop(true);
    }
  });

  test("an abort signal fails the connect", async () => {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error("go away")), 50);
      const err = await PqConnection.connect({
        host: "127.0.0.1",
        port: l.port,
        user: "u",
        signal: ac.signal,
      }).catch((e) => e);
      expect(err.message).toMatch(/aborted/);
      expect(err.cause.message).toBe("go away");
    } finally {
      l.stop(true);
    }
  });

  for (const [what, type, len, limit] of [
    ["a CopyData", "d", 0x7fff_ffff, 64 << 20],
    ["an AuthenticationRequest", "R", 40_000, 30_000],
  ] as const) {
    test(`${what} declaring ${len} bytes is refused before it is buffered`, async () => {
      let sent = 0;
      const l = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          binaryType: "uint8array",
          data(s) {
            // The header of a message too long to hold, then a first slice of its body.
            const head = Buffer.alloc(5 + 65536);
            head.write(type, 0, "latin1");
            head.writeUInt32BE(len, 1);
            sent += s.write(head);
          },
        },
      });
      try {
        const err = await PqConnection.connect({
          host: "127.0.0.1",
          port: l.port,
          user: "u",
          timeoutMs: 5000,
        }).catch((e) => e);
        expect(sent).toBeGreaterThan(0);
        expect(err.message).toBe(
          `message '${type}' of ${len} bytes from 127.0.0.1:${l.port} exceeds the limit of ${limit}`,
        );
      } finally {
        l.stop(true);
      }
    });
  }

  test("the StartupMessage is exactly the reference's (client_encoding first, no SSLRequest)", async () => {
    const got: Uint8Array[] = [];
    const l = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        binaryType: "uint8array",
        data(s, d) {
          got.push(new Uint8Array(d));
          s.end();
        },
      },
    });
    try {
      await PqConnection.connect({
        host: "127.0.0.1",
        port: l.port,
        user: "no_user",
        options: "-c neon.compute_mode=primary",
        applicationName: "compute_ctl",
        timeoutMs: 2000,
      }).catch(() => {});
      const b = Buffer.concat(got);
      expect(b.readInt32BE(0)).toBe(b.length);
      expect(b.readInt32BE(4)).toBe(196608);
      expect(b.subarray(8).toString()).toBe(
        "client_encoding\0UTF8\0user\0no_user\0options\0-c neon.compute_mode=primary\0application_name\0compute_ctl\0\0",
      );
    } finally {
      l.stop(true);
    }
  });
});

describe("PqConnection against Postgres 15", () => {
  let pg: TestPostgres;
  const connect = (o: Partial<Parameters<typeof PqConnection.connect>[0]> = {}) =>
    PqConnection.connect({
      host: "127.0.0.1",
      port: pg.port,
      user: "cloud_admin",
      database: "postgres",
      timeoutMs: 5000,
      ...o,
    });

  beforeAll(async () => {
    pg = await startTestPostgres();
    await pg.psql(
      "SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5pw';" +
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE scramuser LOGIN PASSWORD 'scr am';",
    );
    // Checked before the initdb trust lines, which match everything.
    const hba = join(pg.pgdata, "pg_hba.conf");
    const old = await Bun.file(hba).text();
    await Bun.write(
      hba,
      "host all md5user 127.0.0.1/32 md5\nhost all scramuser 127.0.0.1/32 scram-sha-256\n" + old,
    );
    await pg.psql("SELECT pg_reload_conf()");
  }, 60_000);

  afterAll(async () => {
    await pg?.stop();
    await cleanup();
  });

  test("simpleQuery: columns, text rows, NULLs, command tag", async () => {
    const c = await connect();
    try {
      expect(c.connectMicros).toBeGreaterThan(0);
      const r = await c.simpleQuery(
        "SELECT 1 AS a, NULL::text AS b, 'x y' AS c UNION ALL SELECT 2, 'z', ''",
      );
      expect(r).toEqual({
        columns: ["a", "b", "c"],
        rows: [
          ["1", null, "x y"],
          ["2", "z", ""],
        ],
        command: "SELECT 2",
      });
      expect(await c.simpleQuery("SET search_path = public")).toEqual({
        columns: [],
        rows: [],
        command: "SET",
      });
      // Multi-statement: the last statement's result.
      const m = await c.simpleQuery("SELECT 1; SELECT 'two' AS t");
      expect(m.columns).toEqual(["t"]);
      expect(m.rows).toEqual([["two"]]);
    } finally {
      await c.close();
    }
  });

  test("startup options and application_name reach the server", async () => {
    const c = await connect({ options: "-c search_path=foo,bar", applicationName: "pq-test" });
    try {
      expect((await c.simpleQuery("SHOW search_path")).rows).toEqual([["foo,bar"]]);
      expect((await c.simpleQuery("SELECT current_setting('application_name')")).rows).toEqual([
        ["pq-test"],
      ]);
      expect(c.parameters.get("client_encoding")).toBe("UTF8");
    } finally {
      await c.close();
    }
  });

  test("ErrorResponse becomes PqError and the connection stays usable", async () => {
    const c = await connect();
    try {
      const err = await c.simpleQuery("SELECT * FROM no_such_table").catch((e) => e);
      expect(err).toBeInstanceOf(PqError);
      expect(err.code).toBe("42P01");
      expect(err.severity).toBe("ERROR");
      expect(err.message).toBe('relation "no_such_table" does not exist');
      expect((await c.simpleQuery("SELECT 42")).rows).toEqual([["42"]]);
    } finally {
      await c.close();
    }
  });

  test("copyOut streams COPY TO STDOUT through the extended protocol", async () => {
    const c = await connect();
    try {
      const parts: Uint8Array[] = [];
      for await (const chunk of c.copyOut(
        "COPY (SELECT g, 'row ' || g FROM generate_series(1, 20000) g) TO STDOUT",
      )) {
        parts.push(new Uint8Array(chunk));
      }
      const text = Buffer.concat(parts).toString();
      const lines = text.trimEnd().split("\n");
      expect(lines.length).toBe(20000);
      expect(lines[0]).toBe("1\trow 1");
      expect(lines[19999]).toBe("20000\trow 20000");
      // Still in sync: the next command gets its own answer.
      expect((await c.simpleQuery("SELECT 'after'")).rows).toEqual([["after"]]);
      const again: Uint8Array[] = [];
      for await (const chunk of c.copyOut("COPY (SELECT 7) TO STDOUT")) again.push(chunk.slice());
      expect(Buffer.concat(again).toString()).toBe("7\n");
      // The named statement was closed (tokio-postgres drops it).
      expect((await c.simpleQuery("SELECT count(*) FROM pg_prepared_statements")).rows).toEqual([
        ["0"],
      ]);
    } finally {
      await c.close();
    }
  });

  test("copyOut of a failing statement throws PqError", async () => {
    const c = await connect();
    try {
      const run = async () => {
        for await (const _ of c.copyOut("COPY no_such_table TO STDOUT")) {
          // nothing arrives
        }
      };
      const err = await run().catch((e) => e);
      expect(err).toBeInstanceOf(PqError);
      expect(err.code).toBe("42P01");
      // An error raised after rows were sent: division by zero on the 3rd row.
      const c2 = await connect();
      let seen = 0;
      const run2 = async () => {
        for await (const chunk of c2.copyOut(
          "COPY (SELECT 1 / (3 - g) FROM generate_series(1, 5) g) TO STDOUT",
        )) {
          seen += chunk.length;
        }
      };
      const err2 = await run2().catch((e) => e);
      await c2.close();
      expect(err2).toBeInstanceOf(PqError);
      expect(err2.code).toBe("22012");
      expect(seen).toBeGreaterThan(0);
    } finally {
      await c.close();
    }
  });

  test("md5 and SCRAM-SHA-256 authentication", async () => {
    const m = await connect({ user: "md5user", password: "md5pw" });
    expect((await m.simpleQuery("SELECT current_user")).rows).toEqual([["md5user"]]);
    await m.close();
    const s = await connect({ user: "scramuser", password: "scr am" });
    expect((await s.simpleQuery("SELECT current_user")).rows).toEqual([["scramuser"]]);
    await s.close();

    const wrong = await connect({ user: "scramuser", password: "nope" }).catch((e) => e);
    expect(wrong).toBeInstanceOf(PqError);
    expect(wrong.code).toBe("28P01");
    const wrongMd5 = await connect({ user: "md5user", password: "nope" }).catch((e) => e);
    expect(wrongMd5).toBeInstanceOf(PqError);
    expect(wrongMd5.code).toBe("28P01");
    const missing = await connect({ user: "md5user" }).catch((e) => e);
    expect(missing.message).toMatch(/requested a password but none was provided/);
  });

  test("an abort signal fails a running query", async () => {
    const c = await PqConnection.connect({
      host: "127.0.0.1",
      port: pg.port,
      user: "cloud_admin",
      database: "postgres",
      signal: AbortSignal.timeout(300),
    });
    const t0 = performance.now();
    const err = await c.simpleQuery("SELECT pg_sleep(5)").catch((e) => e);
    expect(err.message).toMatch(/aborted/);
    expect(performance.now() - t0).toBeLessThan(3000);
    await c.close();
  });
});
