// Certificates made with openssl for the TLS tests: an ECDSA P-256 pair (SEC1 key, as the
// compute image's cert-manager writes it), the same key as PKCS#8, and an RSA pair.
import { join } from "node:path";
import { writeUserFile } from "./compute.ts";

async function openssl(args: string[], stdin?: string): Promise<string> {
  const p = Bun.spawn(["openssl", ...args], {
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = [
    await new Response(p.stdout).text(),
    await new Response(p.stderr).text(),
    await p.exited,
  ];
  if (code !== 0) throw new Error(`openssl ${args.join(" ")}: ${err}`);
  return out;
}

export interface Pair {
  key: string;
  cert: string;
}

/** A self-signed ecdsa-with-SHA256 certificate and its SEC1 (`EC PRIVATE KEY`) key. */
export async function p256Pair(cn = "compute.local"): Promise<Pair> {
  const key = await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout"]);
  const cert = await certFor(key, cn);
  return { key, cert };
}

async function certFor(key: string, cn: string): Promise<string> {
  const tmp = join(
    process.env.TMPDIR ?? "/tmp",
    `cert-${process.pid}-${Math.random().toString(36).slice(2)}`,
  );
  await Bun.write(`${tmp}.key`, key);
  try {
    return await openssl([
      "req",
      "-new",
      "-x509",
      "-sha256",
      "-key",
      `${tmp}.key`,
      "-subj",
      `/CN=${cn}`,
      "-days",
      "2",
    ]);
  } finally {
    await Bun.file(`${tmp}.key`).delete();
  }
}

/** The same key re-encoded as PKCS#8 (`BEGIN PRIVATE KEY`). */
export async function pkcs8(secKey: string): Promise<string> {
  return openssl(["pkcs8", "-topk8", "-nocrypt"], secKey);
}

export async function rsaPair(): Promise<Pair> {
  const key = await openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
  return { key, cert: await certFor(key, "rsa.local") };
}

/** Writes `pair` as <dir>/tls.key and <dir>/tls.crt (owned by the test user); returns the paths. */
export async function writePair(dir: string, pair: Pair) {
  const key_path = join(dir, "tls.key");
  const cert_path = join(dir, "tls.crt");
  await writeUserFile(key_path, pair.key);
  await writeUserFile(cert_path, pair.cert);
  return { key_path, cert_path };
}
