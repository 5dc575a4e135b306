// The JWT matrix of the external server, against the compiled binary.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import { emptyConfig, type RunningCompute, startCompute } from "../support/compute.ts";
import { ed25519Key, jwks, rs256Key, type SigningKey } from "../support/jwt.ts";
import { cleanup } from "../support/proc.ts";

const ID = "compute-jwt";
let main: SigningKey;
let noKid: SigningKey;
let stranger: SigningKey;
let compute: RunningCompute;

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  main = await ed25519Key();
  noKid = await ed25519Key({ kid: null });
  stranger = await ed25519Key();
  compute = await startCompute({ config: emptyConfig(jwks(main, noKid)), computeId: ID });
});
afterAll(cleanup);

async function status(token: string | undefined, header?: string) {
  const init = header === undefined ? {} : { headers: { authorization: header } };
  const r = await compute.get("/status", token, init);
  const text = await r.text();
  return { code: r.status, body: r.status === 200 ? JSON.parse(text).status : JSON.parse(text) };
}

const ok = { code: 200, body: "empty" };
const err = (code: number, error: string) => ({ code, body: { error } });
const E400 = err(400, "invalid authorization token");
const E401 = err(401, "failed to verify authorization token");

describe("compute_id tokens", () => {
  test("valid", async () => {
    expect(await status(await main.sign({ compute_id: ID }))).toEqual(ok);
  });
  test("wrong compute_id", async () => {
    expect(await status(await main.sign({ compute_id: "other" }))).toEqual(
      err(403, "invalid compute ID in authorization token claims"),
    );
  });
  test("missing compute_id, and an empty claim set", async () => {
    const missing = err(403, "missing compute_id in authorization token claims");
    expect(await status(await main.sign({ sub: "x" }))).toEqual(missing);
    expect(await status(await main.sign({}))).toEqual(missing);
  });
  test("null compute_id", async () => {
    expect(await status(await main.sign({ compute_id: null } as never))).toEqual(
      err(403, "missing compute_id in authorization token claims"),
    );
  });
  test("a JWK without kid verifies like any other", async () => {
    expect(await status(await noKid.sign({ compute_id: ID }))).toEqual(ok);
  });
});

describe("signatures and token form", () => {
  test("signed by a key outside the set", async () => {
    expect(await status(await stranger.sign({ compute_id: ID }))).toEqual(E401);
  });
  test("no Authorization header, or not Bearer", async () => {
    expect(await status(undefined)).toEqual(E400);
    expect(await status(undefined, "Basic dXNlcjpwYXNz")).toEqual(E400);
  });
  test("alg none", async () => {
    const t = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ compute_id: ID })}.`;
    expect(await status(t)).toEqual(E401);
  });
  test("HS256 signed with the public key", async () => {
    const x = Buffer.from(String(main.jwk.x), "base64url");
    const viaBytes = await new SignJWT({ compute_id: ID })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new Uint8Array(x));
    const viaText = await new SignJWT({ compute_id: ID })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(JSON.stringify(main.jwk)));
    expect(await status(viaBytes)).toEqual(E401);
    expect(await status(viaText)).toEqual(E401);
  });
  test("tampered payload", async () => {
    const [h, , s] = (await main.sign({ compute_id: "other" })).split(".");
    expect(await status(`${h}.${b64url({ compute_id: ID })}.${s}`)).toEqual(E401);
  });
  test("malformed", async () => {
    expect(await status("not-a-jwt")).toEqual(E401);
    expect(await status("a.b.c")).toEqual(E401);
  });
});

describe("expiry (60 s leeway)", () => {
  test("expired beyond the leeway", async () => {
    expect(await status(await main.sign({ compute_id: ID, exp: now() - 120 }))).toEqual(E401);
  });
  test("expired within the leeway", async () => {
    expect(await status(await main.sign({ compute_id: ID, exp: now() - 30 }))).toEqual(ok);
  });
  test("no exp at all", async () => {
    expect(await status(await main.sign({ compute_id: ID }))).toEqual(ok);
  });
});

describe("admin scope", () => {
  const scope = "compute_ctl:admin";
  test("with aud [compute]: accepted whatever the compute_id", async () => {
    expect(await status(await main.sign({ scope, aud: ["compute"] }))).toEqual(ok);
    expect(await status(await main.sign({ scope, aud: ["compute"], compute_id: "x" }))).toEqual(ok);
  });
  test("without aud", async () => {
    expect(await status(await main.sign({ scope }))).toEqual(
      err(401, "missing audience in authorization token claims"),
    );
  });
  test("with aud [invalid]", async () => {
    expect(await status(await main.sign({ scope, aud: ["invalid"] }))).toEqual(
      err(401, "invalid audience in authorization token claims"),
    );
  });
  test("with a string aud", async () => {
    expect(await status(await main.sign({ scope, aud: "compute" }))).toEqual(E401);
  });
  test("an unknown scope", async () => {
    expect(await status(await main.sign({ scope: "compute_ctl:root", aud: ["compute"] }))).toEqual(
      E401,
    );
  });
});

describe("key sets and bypass", () => {
  test("an RS256 key in the set switches validation to RS256", async () => {
    const rsa = await rs256Key();
    const ed = await ed25519Key();
    const c = await startCompute({ config: emptyConfig(jwks(rsa, ed)), computeId: ID });
    const r1 = await c.get("/status", await rsa.sign({ compute_id: ID }));
    expect(r1.status).toBe(200);
    const r2 = await c.get("/status", await ed.sign({ compute_id: ID }));
    expect(r2.status).toBe(401);
    c.proc.kill("SIGKILL");
  });

  test("INSTANCE_ID bypasses authorization", async () => {
    const c = await startCompute({
      config: emptyConfig(jwks(main)),
      computeId: ID,
      env: { INSTANCE_ID: "instance-1" },
    });
    expect((await c.get("/status")).status).toBe(200);
    expect((await c.get("/status", "garbage")).status).toBe(200);
    c.proc.kill("SIGKILL");
  });

  test("an empty key set refuses every token", async () => {
    const c = await startCompute({ config: emptyConfig({ keys: [] }), computeId: ID });
    expect((await c.get("/status", await main.sign({ compute_id: ID }))).status).toBe(401);
    expect((await c.get("/metrics")).status).toBe(200);
    c.proc.kill("SIGKILL");
  });
});
