// Postgres's TLS files (compute_ctl_config.tls): the key and certificate arrive from outside
// (cert-manager) and are renewed in place. Before they are copied into PGDATA the key must match
// the certificate, an ECDSA P-256 one signed with ecdsa-with-SHA256, so a half-renewed pair is
// never installed; until then the copy is retried every second. A watcher hashes the certificate
// and reports a renewal.
import type { KeyObject, X509Certificate } from "node:crypto";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { TlsConfig } from "../api/spec.ts";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";

export const SERVER_KEY = "server.key";
export const SERVER_CRT = "server.crt";

/** The DER of ecdsa-with-SHA256 (1.2.840.10045.4.3.2) as an OBJECT IDENTIFIER's content. */
const ECDSA_WITH_SHA256 = Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);

/** One DER TLV at `at`: where its content starts and ends. */
function tlv(der: Uint8Array, at: number): { tag: number; start: number; end: number } {
  const tag = der[at] ?? -1;
  let len = der[at + 1] ?? 0;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error("bad DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (der[start + i] ?? 0);
    start += n;
  }
  if (start + len > der.length) throw new Error("truncated DER");
  return { tag, start, end: start + len };
}

/** The OID content bytes of a certificate's outer signatureAlgorithm. */
function signatureAlgorithm(der: Uint8Array): Buffer {
  const cert = tlv(der, 0);
  const tbs = tlv(der, cert.start);
  const alg = tlv(der, tbs.end);
  const oid = tlv(der, alg.start);
  if (cert.tag !== 0x30 || tbs.tag !== 0x30 || alg.tag !== 0x30 || oid.tag !== 0x06) {
    throw new Error("not an X.509 certificate");
  }
  return Buffer.from(der.subarray(oid.start, oid.end));
}

/** node:crypto, loaded when a certificate is first checked (a compute without TLS never is). */
const nodeCrypto = (): typeof import("node:crypto") => require("node:crypto");

const FIRST_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/;

/**
 * Throws unless `keyPem` (a SEC1 `EC PRIVATE KEY` on P-256) belongs to the first certificate of
 * `certPem` (the server's; the rest is its CA chain), signed with ecdsa-with-SHA256.
 */
export function verifyKeyCert(keyPem: string, certPem: string): void {
  const first = FIRST_CERT.exec(certPem)?.[0];
  if (!first) throw new Error("no certificates found");
  let cert: X509Certificate;
  try {
    cert = new (nodeCrypto().X509Certificate)(first);
  } catch (err) {
    throw new Error("decoding PEM encoded certificates", { cause: err });
  }
  if (!signatureAlgorithm(cert.raw).equals(ECDSA_WITH_SHA256)) {
    throw new Error("unknown TLS key type");
  }
  let key: KeyObject;
  try {
    if (!keyPem.includes("-----BEGIN EC PRIVATE KEY-----")) {
      throw new Error("not a SEC1 EC private key (BEGIN EC PRIVATE KEY)");
    }
    key = nodeCrypto().createPrivateKey(keyPem);
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new Error("not a P-256 key");
    }
  } catch (err) {
    throw new Error("parse key", { cause: err });
  }
  if (!cert.checkPrivateKey(key)) throw new Error("private key file does not match certificate");
}

/** Writes `text` to `path`, created 0600 (the mode of an existing file is kept), truncated. */
async function writePrivate(path: string, text: string): Promise<void> {
  const f = await open(path, "w", 0o600);
  try {
    await f.writeFile(text);
  } finally {
    await f.close();
  }
}

/** Reads the pair, checks it, and writes PGDATA's server.key and server.crt. */
export async function installTlsPair(pgdata: string, tls: TlsConfig): Promise<void> {
  const key = await readFile(tls.key_path, "utf8");
  const crt = await readFile(tls.cert_path, "utf8");
  verifyKeyCert(key, crt);
  await writePrivate(join(pgdata, SERVER_KEY), key);
  await writePrivate(join(pgdata, SERVER_CRT), crt);
}

export interface RetryOptions {
  retryMs?: number;
  /** A failure is logged at once, then at most this often while it lasts (10 s). */
  logEveryMs?: number;
  signal?: AbortSignal;
}

/** Retries `attempt` every `retryMs` (1 s) until it succeeds or `signal` aborts. */
async function retryForever<T>(
  what: string,
  attempt: () => Promise<T>,
  opts: RetryOptions,
): Promise<T> {
  const retryMs = opts.retryMs ?? 1000;
  const logEveryMs = opts.logEveryMs ?? 10_000;
  let lastLog = Number.NEGATIVE_INFINITY;
  const t0 = performance.now();
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const now = performance.now();
      if (now - lastLog >= logEveryMs) {
        const waited = Math.round((now - t0) / 1000);
        log.error(
          `${what} (waiting for ${waited} s, retrying every second): ${formatOneLine(err)}`,
        );
        lastLog = now;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, retryMs);
        opts.signal?.addEventListener(
          "abort",
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
      if (opts.signal?.aborted) throw opts.signal.reason;
    }
  }
}

/** installTlsPair, retried every second until the pair is readable and matches. */
export function waitForTlsPair(pgdata: string, tls: TlsConfig, opts: RetryOptions = {}) {
  return retryForever(
    "could not install the TLS key and certificate",
    () => installTlsPair(pgdata, tls),
    opts,
  );
}

export async function certDigest(path: string): Promise<string> {
  return new Bun.CryptoHasher("sha256").update(await readFile(path)).digest("hex");
}

/** The certificate's digest, retried every second until the file can be read. */
export function waitForCertDigest(path: string, opts: RetryOptions = {}): Promise<string> {
  return retryForever(`could not read cert file ${path}`, () => certDigest(path), opts);
}

/**
 * Re-hashes the certificate every `intervalMs` and calls `onChange` each time the digest differs
 * from the last one seen (starting from `initial`). An unreadable file is skipped until readable.
 */
export function watchCert(opts: {
  path: string;
  initial: string;
  intervalMs: number;
  onChange: () => void;
}): { stop(): void } {
  let last = opts.initial;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async () => {
    try {
      const now = await certDigest(opts.path);
      if (now !== last && !stopped) {
        last = now;
        log.info(`TLS certificate ${opts.path} changed`);
        opts.onChange();
      }
    } catch (err) {
      log.error(`could not read cert file ${opts.path}: ${formatOneLine(err)}`);
    }
    if (!stopped) timer = setTimeout(tick, opts.intervalMs);
  };
  timer = setTimeout(tick, opts.intervalMs);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
