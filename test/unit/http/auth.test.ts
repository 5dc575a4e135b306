import { beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import type { JwkSet } from "../../../src/api/config.ts";
import { type Authorizer, type AuthResult, createAuthorizer } from "../../../src/http/auth.ts";
import type { Logger } from "../../../src/log.ts";

const COMPUTE_ID = "compute-quiet-river-123";

const quiet: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  trace() {},
  span() {
    return quiet;
  },
};

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

let ed: KeyPair;
let edJwk: JWK;
let other: KeyPair;
let rsa: KeyPair;
let rsaJwk: JWK;
let authorize: Authorizer;

const now = () => Math.floor(Date.now() / 1000);

function b64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString("base64url");
}

async function sign(
  claims: Record<string, unknown>,
  key: CryptoKey = ed.privateKey,
  alg = "EdDSA",
): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, kid: "k1" }).sign(key);
}

async function check(token: string | null, auth: Authorizer = authorize) {
  return auth(token === null ? null : `Bearer ${token}`);
}

const ok: AuthResult = { ok: true };
const e = (status: 400 | 401 | 403, error: string): AuthResult => ({ ok: false, status, error });
const VERIFY = e(401, "failed to verify authorization token");

beforeAll(async () => {
  ed = await generateKeyPair("EdDSA", { extractable: true });
  other = await generateKeyPair("EdDSA", { extractable: true });
  rsa = await generateKeyPair("RS256", { extractable: true });
  // The shape neon_local writes.
  edJwk = {
    ...(await exportJWK(ed.publicKey)),
    use: "sig",
    key_ops: ["verify"],
    alg: "EdDSA",
    kid: "k1",
  };
  rsaJwk = { ...(await exportJWK(rsa.publicKey)), alg: "RS256", kid: "rsa" };
  authorize = await createAuthorizer({
    jwks: { keys: [edJwk as Record<string, unknown>] },
    computeId: COMPUTE_ID,
    bypass: false,
    logger: quiet,
  });
});

describe("compute tokens", () => {
  test("matching compute_id is accepted", async () => {
    expect(await check(await sign({ compute_id: COMPUTE_ID }))).toEqual(ok);
  });

  test("another compute_id is 403", async () => {
    expect(await check(await sign({ compute_id: "compute-other" }))).toEqual(
      e(403, "invalid compute ID in authorization token claims"),
    );
  });

  test("missing or null compute_id is 403", async () => {
    const missing = e(403, "missing compute_id in authorization token claims");
    expect(await check(await sign({}))).toEqual(missing);
    expect(await check(await sign({ compute_id: null }))).toEqual(missing);
  });

  test("non-string compute_id fails deserialization: 401", async () => {
    expect(await check(await sign({ compute_id: 42 }))).toEqual(VERIFY);
  });

  test("unknown extra claims are ignored", async () => {
    expect(
      await check(await sign({ compute_id: COMPUTE_ID, sub: "x", iss: "y", nbf: now() + 3600 })),
    ).toEqual(ok);
  });
});

describe("header", () => {
  test("no header is 400", async () => {
    expect(await authorize(null)).toEqual(e(400, "invalid authorization token"));
  });

  test("Basic scheme is 400", async () => {
    expect(await authorize("Basic dXNlcjpwYXNz")).toEqual(e(400, "invalid authorization token"));
  });

  test("Bearer without a token is 400", async () => {
    expect(await authorize("Bearer ")).toEqual(e(400, "invalid authorization token"));
    expect(await authorize("Bearer")).toEqual(e(400, "invalid authorization token"));
  });

  test("the scheme is case-insensitive", async () => {
    const token = await sign({ compute_id: COMPUTE_ID });
    expect(await authorize(`bearer ${token}`)).toEqual(ok);
  });
});

describe("signature", () => {
  test("signed by a key outside the set is 401", async () => {
    expect(await check(await sign({ compute_id: COMPUTE_ID }, other.privateKey))).toEqual(VERIFY);
  });

  test("alg none is 401", async () => {
    const token = `${b64url(JSON.stringify({ alg: "none" }))}.${b64url(
      JSON.stringify({ compute_id: COMPUTE_ID }),
    )}.`;
    expect(await check(token)).toEqual(VERIFY);
  });

  test("HS256 signed with the public key bytes is 401", async () => {
    const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
    const body = b64url(JSON.stringify({ compute_id: COMPUTE_ID }));
    for (const secret of [Buffer.from(edJwk.x!, "base64url"), Buffer.from(JSON.stringify(edJwk))]) {
      const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
      expect(await check(`${head}.${body}.${sig}`)).toEqual(VERIFY);
    }
  });

  test("a tampered payload is 401", async () => {
    const [h, , s] = (await sign({ compute_id: "compute-other" })).split(".");
    const forged = `${h}.${b64url(JSON.stringify({ compute_id: COMPUTE_ID }))}.${s}`;
    expect(await check(forged)).toEqual(VERIFY);
  });

  test("a malformed token is 401", async () => {
    expect(await check("not-a-jwt")).toEqual(VERIFY);
    expect(await check("a.b.c")).toEqual(VERIFY);
  });
});

describe("expiry", () => {
  test("expired beyond the 60 s leeway is 401", async () => {
    expect(await check(await sign({ compute_id: COMPUTE_ID, exp: now() - 120 }))).toEqual(VERIFY);
  });

  test("expired within the leeway is accepted", async () => {
    expect(await check(await sign({ compute_id: COMPUTE_ID, exp: now() - 30 }))).toEqual(ok);
  });

  test("no exp is accepted (neon_local's tokens have none)", async () => {
    expect(await check(await sign({ compute_id: COMPUTE_ID }))).toEqual(ok);
  });

  test("a future exp is accepted", async () => {
    expect(await check(await sign({ compute_id: COMPUTE_ID, exp: now() + 3600 }))).toEqual(ok);
  });
});

describe("admin scope", () => {
  const admin = { scope: "compute_ctl:admin" };

  test('aud ["compute"] is accepted without compute_id', async () => {
    expect(await check(await sign({ ...admin, aud: ["compute"] }))).toEqual(ok);
    expect(
      await check(await sign({ ...admin, aud: ["x", "compute"], compute_id: "other" })),
    ).toEqual(ok);
  });

  test("no aud is 401", async () => {
    expect(await check(await sign(admin))).toEqual(
      e(401, "missing audience in authorization token claims"),
    );
  });

  test("aud without compute is 401", async () => {
    expect(await check(await sign({ ...admin, aud: ["invalid"] }))).toEqual(
      e(401, "invalid audience in authorization token claims"),
    );
  });

  test("a string aud fails deserialization: 401", async () => {
    expect(await check(await sign({ ...admin, aud: "compute" }))).toEqual(VERIFY);
  });

  test("an unknown scope is 401", async () => {
    expect(await check(await sign({ scope: "compute_ctl:read", compute_id: COMPUTE_ID }))).toEqual(
      VERIFY,
    );
  });

  test("a non-admin token with aud still needs compute_id", async () => {
    expect(await check(await sign({ aud: ["compute"] }))).toEqual(
      e(403, "missing compute_id in authorization token claims"),
    );
  });
});

describe("key sets", () => {
  test("an RS256 key switches every key to RS256", async () => {
    const auth = await createAuthorizer({
      jwks: { keys: [edJwk, rsaJwk] as Record<string, unknown>[] },
      computeId: COMPUTE_ID,
      bypass: false,
      logger: quiet,
    });
    const rsToken = await sign({ compute_id: COMPUTE_ID }, rsa.privateKey, "RS256");
    expect(await check(rsToken, auth)).toEqual(ok);
    expect(await check(await sign({ compute_id: COMPUTE_ID }), auth)).toEqual(VERIFY);
  });

  test("an RS256 token is refused by an EdDSA set", async () => {
    const rsaNoAlg = { ...(await exportJWK(rsa.publicKey)), kid: "rsa" };
    const auth = await createAuthorizer({
      jwks: { keys: [edJwk, rsaNoAlg] as Record<string, unknown>[] },
      computeId: COMPUTE_ID,
      bypass: false,
      logger: quiet,
    });
    expect(
      await check(await sign({ compute_id: COMPUTE_ID }, rsa.privateKey, "RS256"), auth),
    ).toEqual(VERIFY);
    expect(await check(await sign({ compute_id: COMPUTE_ID }), auth)).toEqual(ok);
  });

  test("a JWK without kid works, and keys are tried in turn", async () => {
    const { kid: _kid, alg: _alg, ...bare } = edJwk;
    const otherJwk = await exportJWK(other.publicKey);
    const auth = await createAuthorizer({
      jwks: { keys: [otherJwk, bare] as Record<string, unknown>[] },
      computeId: COMPUTE_ID,
      bypass: false,
      logger: quiet,
    });
    expect(await check(await sign({ compute_id: COMPUTE_ID }), auth)).toEqual(ok);
    expect(await check(await sign({ compute_id: COMPUTE_ID }, other.privateKey), auth)).toEqual(ok);
  });

  test("a key that fails to import is skipped with a warning", async () => {
    const warnings: string[] = [];
    const logger: Logger = { ...quiet, warn: (m) => warnings.push(m) };
    const auth = await createAuthorizer({
      jwks: { keys: [{ kty: "OKP", crv: "Ed25519", x: 7, kid: "bad" }, edJwk] as JwkSet["keys"] },
      computeId: COMPUTE_ID,
      bypass: false,
      logger,
    });
    expect(warnings.some((w) => w.includes("bad"))).toBe(true);
    expect(await check(await sign({ compute_id: COMPUTE_ID }), auth)).toEqual(ok);
  });

  test("null jwks or an empty set refuses every token with 401", async () => {
    for (const jwks of [null, { keys: [] }]) {
      const auth = await createAuthorizer({
        jwks,
        computeId: COMPUTE_ID,
        bypass: false,
        logger: quiet,
      });
      expect(await check(await sign({ compute_id: COMPUTE_ID }), auth)).toEqual(VERIFY);
      // The header check still comes first.
      expect(await auth(null)).toEqual(e(400, "invalid authorization token"));
    }
  });

  test("bypass accepts anything, even no header", async () => {
    const auth = await createAuthorizer({
      jwks: null,
      computeId: COMPUTE_ID,
      bypass: true,
      logger: quiet,
    });
    expect(await auth(null)).toEqual(ok);
    expect(await auth("Basic x")).toEqual(ok);
  });
});

describe("accepted tokens are remembered until they expire", () => {
  test("a token accepted within the leeway is refused once exp + 60 s has passed", async () => {
    const auth = await createAuthorizer({
      jwks: { keys: [edJwk as Record<string, unknown>] },
      computeId: COMPUTE_ID,
      bypass: false,
      logger: quiet,
    });
    const now = Math.floor(Date.now() / 1000);
    // Valid for about one more second (exp 59 s ago, leeway 60 s).
    const token = await sign({ compute_id: COMPUTE_ID, exp: now - 59 });
    expect(await check(token, auth)).toEqual(ok);
    expect(await check(token, auth)).toEqual(ok);
    await Bun.sleep(2100);
    expect(await check(token, auth)).toEqual(VERIFY);
  });

  test("only the exact token is remembered: a tampered copy is still verified", async () => {
    const token = await sign({ compute_id: COMPUTE_ID });
    expect(await check(token)).toEqual(ok);
    const [h, , s] = token.split(".");
    const forged = `${h}.${b64url(JSON.stringify({ compute_id: COMPUTE_ID, x: 1 }))}.${s}`;
    expect(await check(forged)).toEqual(VERIFY);
  });
});
