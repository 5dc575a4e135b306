import { afterEach, describe, expect, test } from "bun:test";
import {
  be,
  feMessage,
  type PgServer,
  rawExchange,
  startPgServer,
  startupPacket,
} from "../../fakes/pgwire.ts";

let server: PgServer | null = null;
afterEach(async () => {
  await server?.stop();
  server = null;
});

const echoSession = async (conn: import("../../fakes/pgwire.ts").FakeConn) => {
  const q = await conn.expect("Query", (m) => (m.sql === "hello" ? null : `bad query ${m.sql}`));
  if (!q) return;
  await conn.send(be.commandComplete("HELLO"), be.readyForQuery());
  await conn.expect("Terminate");
};

describe("pgwire fake-server toolkit", () => {
  test("answers SSLRequest with N, then the trust handshake of postgres_backend", async () => {
    server = await startPgServer({ name: "t", session: echoSession });
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    const r = await rawExchange(
      server.port,
      [ssl, startupPacket({ user: "u" }), feMessage("Q", Buffer.from("hello\0")), feMessage("X")],
      { sslRequests: 1 },
    );
    expect(r.ssl).toBe("N");
    // AuthenticationOk, 3 × ParameterStatus, ReadyForQuery, CommandComplete, ReadyForQuery
    expect(r.types).toEqual(["R", "S", "S", "S", "Z", "C", "Z"]);
    expect(r.closed).toBe(true);
    expect(server.rejections).toEqual([]);
  });

  test("a cleartext password is required when configured; a wrong one is rejected", async () => {
    server = await startPgServer({ name: "t", password: "tok", session: echoSession });
    const ok = await rawExchange(server.port, [
      startupPacket({ user: "u" }),
      feMessage("p", Buffer.from("tok\0")),
      feMessage("Q", Buffer.from("hello\0")),
      feMessage("X"),
    ]);
    // AuthenticationCleartextPassword, AuthenticationOk, client_encoding, ReadyForQuery, ...
    expect(ok.types).toEqual(["R", "R", "S", "Z", "C", "Z"]);
    expect(server.rejections).toEqual([]);

    const bad = await rawExchange(server.port, [
      startupPacket({ user: "u" }),
      feMessage("p", Buffer.from("nope\0")),
    ]);
    expect(bad.types).toEqual(["R", "E"]);
    expect(bad.closed).toBe(true);
    expect(server.rejections).toEqual(["password authentication failed: wrong token"]);
  });

  test("unexpected messages, malformed bodies and bad startup are rejected and recorded", async () => {
    server = await startPgServer({
      name: "t",
      checkStartup: (p) => (p.database ? "no database expected" : null),
      session: echoSession,
    });
    const a = await rawExchange(server.port, [
      startupPacket({ user: "u" }),
      feMessage("d", Buffer.from("x")),
    ]);
    expect(a.types.at(-1)).toBe("E");
    expect(a.closed).toBe(true);
    const b = await rawExchange(server.port, [startupPacket({ user: "u", database: "d" })]);
    expect(b.types).toEqual(["E"]);
    const c = await rawExchange(server.port, [startupPacket({ user: "u" }, 131072)]);
    expect(c.types).toEqual(["E"]);
    const d = await rawExchange(server.port, [
      startupPacket({ user: "u" }),
      feMessage("Q", Buffer.from("no terminator")),
    ]);
    expect(d.types.at(-1)).toBe("E");
    expect(server.rejections).toEqual([
      "expected Query, got message 'd'",
      "no database expected",
      "unsupported protocol version 131072",
      "malformed message 'Q': unterminated string",
    ]);
  });
});
