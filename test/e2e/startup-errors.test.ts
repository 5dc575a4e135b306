// Every way the binary refuses to start: usage errors exit 2, configuration errors exit 1,
// each with one clear line naming the flag or JSON path, never a stack trace.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { runBinary } from "../support/binary.ts";
import {
  CONNSTR,
  emptyConfig,
  minimalSpec,
  PG_BINDIR,
  PGBIN,
  startCompute,
  writeUserFile,
} from "../support/compute.ts";
import { ed25519Key, jwks } from "../support/jwt.ts";
import { freePort } from "../support/ports.ts";
import { cleanup, makeUserDir } from "../support/proc.ts";

let dir: string;
beforeAll(async () => {
  dir = await makeUserDir("errors-");
});
afterAll(cleanup);

const base = () => ["-D", join(dir, "pgdata"), "-C", CONNSTR, "--compute-id", "c1", "-b", PGBIN];

/** Runs the binary and checks the exit code and that stderr has exactly one error line. */
async function refused(args: string[], code: 1 | 2, ...fragments: string[]): Promise<string> {
  const r = await runBinary(args, { timeoutMs: 20_000 });
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error: ") || / ERROR /.test(l));
  expect({ code: r.code, errors: errors.length }).toEqual({ code, errors: 1 });
  expect(r.stderr).not.toMatch(/^\s+at /m);
  for (const f of fragments) expect(errors[0]).toContain(f);
  return errors[0] ?? "";
}

async function file(name: string, content: unknown): Promise<string> {
  const path = join(dir, name);
  await writeUserFile(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

describe("usage errors exit 2", () => {
  test("an unknown flag", async () => {
    await refused([...base(), "-c", "/x", "--no-such-flag"], 2, "--no-such-flag");
  });
  test("a missing value", async () => {
    await refused([...base(), "-c"], 2, "--config");
  });
  test("a non-numeric port", async () => {
    await refused(
      [...base(), "-c", "/x", "--external-http-port", "eighty"],
      2,
      "--external-http-port",
    );
  });
  test("-c with -p", async () => {
    await refused([...base(), "-c", "/x", "-p", "http://cp"], 2, "--config", "--control-plane-uri");
  });
  test("--http-port with --external-http-port", async () => {
    await refused(
      [...base(), "-c", "/x", "--http-port", "1", "--external-http-port", "2"],
      2,
      "--http-port",
    );
  });
  test("no configuration source", async () => {
    await refused(base(), 2, "--config", "--control-plane-uri", "--spec-path");
  });
  test("a required flag missing", async () => {
    await refused(["-D", "/x", "-C", CONNSTR, "-c", "/x"], 2, "--compute-id");
  });
  test("--lakebase-mode without true|false", async () => {
    await refused([...base(), "-c", "/x", "--lakebase-mode", "maybe"], 2, "--lakebase-mode");
  });
});

describe("configuration errors exit 1", () => {
  test("a connstr that is not a URL", async () => {
    const line = await refused(
      ["-D", "/x", "-C", "host=localhost password=secret", "-i", "c", "-c", "/x"],
      1,
      "--connstr",
    );
    expect(line).not.toContain("secret");
  });
  test("a config file that does not exist", async () => {
    await refused([...base(), "-c", join(dir, "missing.json")], 1, "missing.json");
  });
  test("a config file that is not JSON", async () => {
    await refused([...base(), "-c", await file("bad.json", "{oops")], 1, "--config", "bad.json");
  });
  test("a config without compute_ctl_config", async () => {
    await refused(
      [...base(), "-c", await file("nocc.json", { spec: null })],
      1,
      "compute_ctl_config",
    );
  });
  test("a spec of the wrong shape names the JSON path", async () => {
    const spec = minimalSpec({ offload_lfc_interval_seconds: 0 });
    const path = await file("zero.json", { spec, compute_ctl_config: { jwks: { keys: [] } } });
    await refused([...base(), "-c", path], 1, "spec.offload_lfc_interval_seconds");
  });
  test("a spec that fails validation", async () => {
    const spec = minimalSpec({ safekeeper_connstrings: ["a:1", "a:1"] });
    const path = await file("dup.json", { spec, compute_ctl_config: { jwks: { keys: [] } } });
    await refused([...base(), "-c", path], 1, "duplicate entry in safekeeper_connstrings: a:1!");
  });
  test("a spec without pageserver information", async () => {
    const spec = minimalSpec({ pageserver_connstring: null });
    const path = await file("nops.json", { spec, compute_ctl_config: { jwks: { keys: [] } } });
    await refused(
      [...base(), "-c", path],
      1,
      "pageserver connection information should be provided",
    );
  });
  test("--pgbin that is not a postgres binary", async () => {
    const cfg = await file("ok.json", emptyConfig({ keys: [] }));
    await refused(
      ["-D", "/x", "-C", CONNSTR, "-i", "c", "-c", cfg, "-b", `${PG_BINDIR}/pg_ctl`],
      1,
      "pgbin",
    );
  });
  test("a pg_config that reports an unsupported version", async () => {
    const bin = join(dir, "pg13", "bin");
    mkdirSync(bin, { recursive: true });
    symlinkSync(PGBIN, join(bin, "postgres"));
    await writeUserFile(join(bin, "pg_config"), "#!/bin/sh\necho 'PostgreSQL 13.9'\n");
    chmodSync(join(bin, "pg_config"), 0o755);
    const cfg = await file("ok.json", emptyConfig({ keys: [] }));
    await refused(
      ["-D", "/x", "-C", CONNSTR, "-i", "c", "-c", cfg, "-b", join(bin, "postgres")],
      1,
      "13",
    );
  });
  test("an HTTP port already in use", async () => {
    const port = await freePort();
    const blocker = Bun.serve({ hostname: "::", port, fetch: () => new Response("busy") });
    try {
      const cfg = await file("ok.json", emptyConfig({ keys: [] }));
      await refused([...base(), "-c", cfg, "--external-http-port", String(port)], 1, String(port));
    } finally {
      blocker.stop(true);
    }
  });
});

describe("-S/--spec-path", () => {
  test("a bare spec starts without JWKS: authenticated routes answer 401, with a warning", async () => {
    const bare = minimalSpec({
      mode: "Replica",
      pageserver_connstring: "postgres://no_user@127.0.0.1:9",
    });
    const spec = await file("bare.json", bare);
    const c = await startCompute({
      args: ["-S", spec],
      env: {
        COMPUTE_CTL_TESTING_FAILED_EXIT_DELAY_MS: "1500",
        NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: "0",
      },
    });
    const key = await ed25519Key();
    expect((await c.get("/status", await key.sign({ compute_id: c.computeId }))).status).toBe(401);
    expect((await c.get("/metrics")).status).toBe(200);
    expect(c.stderr.text).toContain(
      "WARN --spec-path gave a bare compute spec without compute_ctl_config",
    );
    // The spec was taken: the start fails (no pageserver) and the process exits 1.
    expect(await c.exited).toBe(1);
    expect(c.stderr.text).toContain(
      "could not start the compute node: failed to get basebackup@0/0",
    );
  });

  test("a ComputeConfig given with -S keeps its JWKS", async () => {
    const key = await ed25519Key();
    const cfg = await file("cfg-s.json", emptyConfig(jwks(key)));
    const c = await startCompute({ args: ["-S", cfg] });
    const r = await c.get("/status", await key.sign({ compute_id: c.computeId }));
    expect(r.status).toBe(200);
    c.proc.kill("SIGTERM");
    expect(await c.exited).toBe(1);
  });

  test("conflicts with -c", async () => {
    await refused([...base(), "-S", "/x", "-c", "/y"], 2, "--spec-path", "--config");
  });
});
