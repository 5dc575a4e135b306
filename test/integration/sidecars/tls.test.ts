// The TLS pair check and copy against certificates made with openssl: a matching P-256 pair, a
// mismatched one, an RSA pair, a PKCS#8 key; the wait until a pair matches; the watcher.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  installTlsPair,
  verifyKeyCert,
  waitForTlsPair,
  watchCert,
} from "../../../src/sidecars/tls.ts";
import { p256Pair, pkcs8, rsaPair } from "../../support/certs.ts";
import { cleanup } from "../../support/proc.ts";

setDefaultTimeout(30_000);
afterAll(cleanup);

const a = await p256Pair("a.local");
const b = await p256Pair("b.local");
const rsa = await rsaPair();

describe("verifyKeyCert", () => {
  test("a matching ECDSA P-256 pair passes, also with a CA chain after the certificate", () => {
    expect(() => verifyKeyCert(a.key, a.cert)).not.toThrow();
    expect(() => verifyKeyCert(a.key, a.cert + b.cert)).not.toThrow();
  });

  test("the first certificate is the server's: a chain in the wrong order fails", () => {
    expect(() => verifyKeyCert(a.key, b.cert + a.cert)).toThrow(
      "private key file does not match certificate",
    );
  });

  test("a mismatched key, an RSA certificate, a PKCS#8 key, no certificate", async () => {
    expect(() => verifyKeyCert(b.key, a.cert)).toThrow(
      "private key file does not match certificate",
    );
    expect(() => verifyKeyCert(rsa.key, rsa.cert)).toThrow("unknown TLS key type");
    const p8 = await pkcs8(a.key);
    expect(() => verifyKeyCert(p8, a.cert)).toThrow("parse key");
    expect(() => verifyKeyCert(a.key, "garbage")).toThrow("no certificates found");
  });
});

describe("installing the pair", () => {
  test("server.key and server.crt are the inputs, mode 0600", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tls-"));
    await writeFile(join(dir, "k"), a.key);
    await writeFile(join(dir, "c"), a.cert);
    await installTlsPair(dir, { key_path: join(dir, "k"), cert_path: join(dir, "c") });
    expect(await readFile(join(dir, "server.key"), "utf8")).toBe(a.key);
    expect(await readFile(join(dir, "server.crt"), "utf8")).toBe(a.cert);
    expect((await stat(join(dir, "server.key"))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "server.crt"))).mode & 0o777).toBe(0o600);
  });

  test("the wait retries while the pair does not match and installs it once it does", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tls-"));
    const tls = { key_path: join(dir, "k"), cert_path: join(dir, "c") };
    await writeFile(tls.key_path, b.key);
    await writeFile(tls.cert_path, a.cert);
    let done = false;
    const waiting = waitForTlsPair(dir, tls, { retryMs: 50 }).then(() => {
      done = true;
    });
    await Bun.sleep(400);
    expect(done).toBe(false);
    expect(await Bun.file(join(dir, "server.key")).exists()).toBe(false);
    await writeFile(tls.key_path, a.key);
    await waiting;
    expect(await readFile(join(dir, "server.key"), "utf8")).toBe(a.key);
  });

  test("the wait ends when aborted", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tls-"));
    const ac = new AbortController();
    const waiting = waitForTlsPair(
      dir,
      { key_path: "/nonexistent/k", cert_path: "/nonexistent/c" },
      {
        signal: ac.signal,
      },
    );
    setTimeout(() => ac.abort(new Error("stop")), 100);
    await expect(waiting).rejects.toThrow("stop");
  });
});

describe("watchCert", () => {
  test("one call per change of the certificate's content", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tls-"));
    const path = join(dir, "c");
    await writeFile(path, a.cert);
    const { certDigest } = await import("../../../src/sidecars/tls.ts");
    let changes = 0;
    const w = watchCert({
      path,
      initial: await certDigest(path),
      intervalMs: 50,
      onChange: () => changes++,
    });
    await Bun.sleep(200);
    expect(changes).toBe(0);
    await writeFile(path, b.cert);
    await Bun.sleep(300);
    expect(changes).toBe(1);
    await writeFile(path, b.cert);
    await Bun.sleep(200);
    expect(changes).toBe(1);
    w.stop();
  });
});
