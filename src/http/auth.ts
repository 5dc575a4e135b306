// JWT authorization of the external server. Tokens are compact JWS signed by one
// of the JWKS keys; the claims are checked here by hand because the reference's rules (optional
// exp with 60 s leeway, nbf/iat/iss ignored, aud only checked for admin tokens) differ from what
// a generic JWT validator enforces.
import { compactVerify, importJWK } from "jose";
import type { JwkSet } from "../api/config.ts";
import { type Logger, log as rootLog } from "../log.ts";

export type AuthResult = { ok: true } | { ok: false; status: 400 | 401 | 403; error: string };
/**
 * The check of an `Authorization` header. It answers synchronously when it can (no bearer token,
 * a token accepted before) and with a Promise when it has to verify a signature.
 */
export type Authorizer = (authorizationHeader: string | null) => AuthResult | Promise<AuthResult>;

const OK: AuthResult = Object.freeze({ ok: true });

export const COMPUTE_AUDIENCE = "compute";
export const ADMIN_SCOPE = "compute_ctl:admin";
/** jsonwebtoken's default leeway, which the reference keeps. */
export const EXP_LEEWAY_SECONDS = 60;
/** How many accepted tokens are remembered before the cache starts over. */
const ACCEPTED_TOKENS_MAX = 1024;

const INVALID_TOKEN = "invalid authorization token";
const VERIFY_FAILED = "failed to verify authorization token";

type VerifyKey = Awaited<ReturnType<typeof importJWK>>;
interface ImportedKey {
  name: string;
  key: VerifyKey;
}

interface Claims {
  compute_id?: string;
  admin: boolean;
  aud?: string[];
  exp: number | undefined;
}

// Only the public members: the reference builds verification keys from these alone, and a JWK
// carrying `d` or a restrictive `key_ops`/`use` must not stop it from verifying.
const PUBLIC_MEMBERS = ["kty", "crv", "x", "y", "n", "e", "k"];

function keyName(jwk: Record<string, unknown>, index: number): string {
  // A JWK without `kid` is legal; the reference crashes on it; we name it by position.
  return typeof jwk.kid === "string" ? jwk.kid : `#${index} (no kid)`;
}

function bearerToken(header: string | null): string | null {
  // `Bearer` is matched case-insensitively, followed by one space and a non-empty rest.
  if (header === null || header.length <= 7 || header.charCodeAt(6) !== 0x20) return null;
  if (!header.startsWith("Bearer") && header.slice(0, 6).toLowerCase() !== "bearer") return null;
  return header.slice(7);
}

function optional(v: unknown): unknown {
  return v === null ? undefined : v;
}

/** ComputeClaims deserialization plus the exp check; null when the claims are unacceptable. */
function parseClaims(payload: Uint8Array, nowSeconds: number): Claims | null {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    return null;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return null;
  const c = doc as Record<string, unknown>;

  const exp = optional(c.exp);
  if (exp !== undefined) {
    if (typeof exp !== "number" || !Number.isFinite(exp)) return null;
    if (exp < nowSeconds - EXP_LEEWAY_SECONDS) return null;
  }

  const computeId = optional(c.compute_id);
  if (computeId !== undefined && typeof computeId !== "string") return null;

  const scope = optional(c.scope);
  if (scope !== undefined && scope !== ADMIN_SCOPE) return null;

  const aud = optional(c.aud);
  if (aud !== undefined && !(Array.isArray(aud) && aud.every((a) => typeof a === "string"))) {
    return null;
  }

  return {
    compute_id: computeId as string | undefined,
    admin: scope === ADMIN_SCOPE,
    aud: aud as string[] | undefined,
    exp: exp as number | undefined,
  };
}

/**
 * Builds the check for the external server's `Authorization` header. Keys are imported once;
 * `jwks: null` or an empty key set makes every token fail with 401; `bypass` (INSTANCE_ID set)
 * accepts every request.
 */
export async function createAuthorizer(opts: {
  jwks: JwkSet | null;
  computeId: string;
  bypass: boolean;
  logger?: Logger;
}): Promise<Authorizer> {
  const logger = opts.logger ?? rootLog;
  if (opts.bypass) return () => OK;

  const jwks = opts.jwks?.keys ?? [];
  // One RS256 key switches validation to RS256 for every key (a Hadron addition upstream).
  const alg = jwks.some((k) => k.alg === "RS256") ? "RS256" : "EdDSA";

  const keys: ImportedKey[] = [];
  for (const [i, jwk] of jwks.entries()) {
    const name = keyName(jwk, i);
    const pub: Record<string, unknown> = {};
    for (const m of PUBLIC_MEMBERS) if (jwk[m] !== undefined) pub[m] = jwk[m];
    try {
      keys.push({ name, key: await importJWK(pub, alg) });
    } catch (err) {
      logger.warn(`failed to construct decoding key from ${name}`, { error: err });
    }
  }

  const fail = (status: 400 | 401 | 403, error: string): AuthResult => ({
    ok: false,
    status,
    error,
  });

  // The keys never change after start, so a token that verified once stays good until its exp
  // (plus the leeway): remember accepted tokens and skip the signature check for them. The
  // control plane sends the same token on every /status poll. Bounded: cleared when full.
  const accepted = new Map<string, number>();
  const ok = (token: string, exp: number | undefined): AuthResult => {
    if (accepted.size >= ACCEPTED_TOKENS_MAX) accepted.clear();
    accepted.set(
      token,
      exp === undefined ? Number.POSITIVE_INFINITY : (exp + EXP_LEEWAY_SECONDS) * 1000,
    );
    return OK;
  };

  const verify = async (token: string): Promise<AuthResult> => {
    let claims: Claims | null = null;
    for (const { name, key } of keys) {
      let payload: Uint8Array;
      try {
        // `algorithms` pins the header alg, so `none`, HS256 and friends never verify.
        ({ payload } = await compactVerify(token, key, { algorithms: [alg] }));
      } catch (err) {
        logger.warn(`failed to decode authorization token using ${name}`, { error: err });
        continue;
      }
      // A verified signature with bad claims is final, like a deserialization error upstream.
      claims = parseClaims(payload, Math.floor(Date.now() / 1000));
      break;
    }
    if (claims === null) return fail(401, VERIFY_FAILED);

    if (claims.admin) {
      if (claims.aud === undefined) {
        return fail(401, "missing audience in authorization token claims");
      }
      if (!claims.aud.includes(COMPUTE_AUDIENCE)) {
        return fail(401, "invalid audience in authorization token claims");
      }
      return ok(token, claims.exp);
    }
    if (claims.compute_id === undefined) {
      return fail(403, "missing compute_id in authorization token claims");
    }
    if (claims.compute_id !== opts.computeId) {
      return fail(403, "invalid compute ID in authorization token claims");
    }
    return ok(token, claims.exp);
  };

  // The header of the last request answered from `accepted`: the next poll usually repeats it.
  let lastHeader: string | null = null;
  let lastUntil = 0;
  return (header) => {
    if (header !== null && header === lastHeader && Date.now() <= lastUntil) return OK;
    const token = bearerToken(header);
    if (token === null) return fail(400, INVALID_TOKEN);
    const until = accepted.get(token);
    if (until !== undefined) {
      if (Date.now() <= until) {
        lastHeader = header;
        lastUntil = until;
        return OK;
      }
      accepted.delete(token);
    }
    return verify(token);
  };
}
