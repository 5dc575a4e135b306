// Keys and tokens for the external API, generated in the test (never checked in).
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";

export interface SigningKey {
  /** The public JWK as it goes into compute_ctl_config.jwks. */
  jwk: Record<string, unknown>;
  sign(claims: JWTPayload, header?: Record<string, unknown>): Promise<string>;
}

export async function ed25519Key(opts: { kid?: string | null } = {}): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair("EdDSA", {
    crv: "Ed25519",
    extractable: true,
  });
  const jwk: Record<string, unknown> = {
    use: "sig",
    key_ops: ["verify"],
    alg: "EdDSA",
    ...(await exportJWK(publicKey)),
  };
  if (opts.kid !== null) jwk.kid = opts.kid ?? crypto.randomUUID();
  return {
    jwk,
    sign: (claims, header) =>
      new SignJWT(claims).setProtectedHeader({ alg: "EdDSA", ...header }).sign(privateKey),
  };
}

export async function rs256Key(): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { alg: "RS256", kid: crypto.randomUUID(), ...(await exportJWK(publicKey)) };
  return {
    jwk,
    sign: (claims, header) =>
      new SignJWT(claims).setProtectedHeader({ alg: "RS256", ...header }).sign(privateKey),
  };
}

export function jwks(...keys: SigningKey[]) {
  return { keys: keys.map((k) => k.jwk) };
}
