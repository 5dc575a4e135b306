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

/**
 * Runs the binary and checks the exit code, that stderr has exactly one error line and that it
 * reads exactly `expected` (the timestamp of a log line left out): the cause said once.
 */
async function refused(args: string[], code: 1 | 2, expected: string): Promise<void> {
  const r = await runBinary(args, { timeoutMs: 20_000 });
  const errors = r.stderr
    .split("\n")
    .filter((l) => l.startsWith("error: ") || / ERROR /.test(l))
    .map((l) => l.replace(/^\S+Z\s+ERROR /, "ERROR "));
  expect({ code: r.code, errors }).toEqual({ code, errors: [expected] });
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

async function file(name: string, content: unknown): Promise<string> {
  const path = join(dir, name);
  await writeUserFile(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

const usage = (message: string) => `error: ${message}; see 'compute_ctl --help'`;

describe("usage errors exit 2, ending with where the help is", () => {
  test("an unknown flag", async () => {
    await refused(
      [...base(), "-c", "/x", "--no-such-flag"],
      2,
      usage("unexpected argument '--no-such-flag' found"),
    );
  });
  test("an unknown flag close to a real one", async () => {
    await refused(
      [...base(), "-c", "/x", "--pg-data", "/y"],
      2,
      usage("unexpected argument '--pg-data' found (did you mean '--pgdata'?)"),
    );
  });
  test("a missing value", async () => {
    await refused(
      [...base(), "-c"],
      2,
      usage("a value is required for '--config <CONFIG>' but none was supplied"),
    );
  });
  test("a non-numeric port", async () => {
    await refused(
      [...base(), "-c", "/x", "--external-http-port", "eighty"],
      2,
      usage(
        "invalid value 'eighty' for '--external-http-port <EXTERNAL_HTTP_PORT>': invalid digit found in string",
      ),
    );
  });
  test("-c with -p", async () => {
    await refused(
      [...base(), "-c", "/x", "-p", "http://cp"],
      2,
      usage(
        "the argument '--config <CONFIG>' cannot be used with '--control-plane-uri <CONTROL_PLANE_API_BASE_URL>'",
      ),
    );
  });
  test("--http-port with --external-http-port", async () => {
    await refused(
      [...base(), "-c", "/x", "--http-port", "1", "--external-http-port", "2"],
      2,
      usage(
        "the argument '--http-port <HTTP_PORT>' cannot be used with '--external-http-port <EXTERNAL_HTTP_PORT>'",
      ),
    );
  });
  test("no configuration source", async () => {
    await refused(
      base(),
      2,
      usage("one of --config, --control-plane-uri or --spec-path is required"),
    );
  });
  test("a required flag missing", async () => {
    await refused(
      ["-D", "/x", "-C", CONNSTR, "-c", "/x"],
      2,
      usage("the following required arguments were not provided: --compute-id <COMPUTE_ID>"),
    );
  });
  test("--lakebase-mode without true|false", async () => {
    await refused(
      [...base(), "-c", "/x", "--lakebase-mode", "maybe"],
      2,
      usage(
        "invalid value 'maybe' for '--lakebase-mode <LAKEBASE_MODE>' [possible values: true, false]",
      ),
    );
  });
});

describe("configuration errors exit 1, each cause said once", () => {
  test("a connstr that is not a URL", async () => {
    await refused(
      ["-D", "/x", "-C", "host=localhost password=secret", "-i", "c", "-c", "/x"],
      1,
      "error: cannot parse connstr as a URL: the value of --connstr is not a URL",
    );
  });
  test("a config file that does not exist", async () => {
    const path = join(dir, "missing.json");
    await refused(
      [...base(), "-c", path],
      1,
      `ERROR cannot read --config file ${path}: ENOENT: no such file or directory, open '${path}'`,
    );
  });
  test("a config file that is a directory", async () => {
    await refused(
      [...base(), "-c", dir],
      1,
      `ERROR cannot read --config file ${dir}: Directories cannot be read like files`,
    );
  });
  test("a config file that is not JSON", async () => {
    const path = await file("bad.json", "{oops");
    await refused(
      [...base(), "-c", path],
      1,
      `ERROR invalid --config file ${path}: invalid JSON: JSON Parse error: Expected '}'`,
    );
  });
  test("an empty config file", async () => {
    const path = await file("empty.json", "");
    await refused(
      [...base(), "-c", path],
      1,
      `ERROR invalid --config file ${path}: invalid JSON: JSON Parse error: Unexpected EOF`,
    );
  });
  test("a spec file that is not JSON", async () => {
    const path = await file("bad-spec.json", "[1,");
    await refused(
      [...base(), "-S", path],
      1,
      `ERROR invalid --spec-path file ${path}: invalid JSON: JSON Parse error: Unexpected EOF`,
    );
  });
  test("a config without compute_ctl_config", async () => {
    const path = await file("nocc.json", { spec: null });
    await refused(
      [...base(), "-c", path],
      1,
      `ERROR invalid --config file ${path}: compute_ctl_config: missing field`,
    );
  });
  test("a spec of the wrong shape names the JSON path", async () => {
    const spec = minimalSpec({ offload_lfc_interval_seconds: 0 });
    const path = await file("zero.json", { spec, compute_ctl_config: { jwks: { keys: [] } } });
    await refused(
      [...base(), "-c", path],
      1,
      `ERROR invalid --config file ${path}: spec.offload_lfc_interval_seconds: expected a non-zero integer, got 0`,
    );
  });
  test("a spec that fails validation", async () => {
    const spec = minimalSpec({ safekeeper_connstrings: ["a:1", "a:1"] });
    const path = await file("dup.json", { spec, compute_ctl_config: { jwks: { keys: [] } } });
    await refused(
      [...base(), "-c", path],
      1,
      "ERROR invalid compute spec: duplicate entry in safekeeper_connstrings: a:1!",
    );
  });
  test("a spec without pageserver information", async () => {
    const spec = minimalSpec({ pageserver_connstring: null });
    const path = await file("nops.json", { spec, compute_ctl_config: { jwks: { keys: [] } } });
    await refused(
      [...base(), "-c", path],
      1,
      "ERROR invalid compute spec: pageserver connection information should be provided",
    );
  });
  test("invalid FAILPOINTS", async () => {
    const cfg = await file("ok.json", emptyConfig({ keys: [] }));
    const r = await runBinary([...base(), "-c", cfg], {
      env: { COMPUTE_CTL_TESTING: "1", FAILPOINTS: "oops" },
      timeoutMs: 20_000,
    });
    const errors = r.stderr.split("\n").filter((l) => / ERROR /.test(l));
    expect(r.code).toBe(1);
    expect(errors.map((l) => l.replace(/^\S+Z\s+/, ""))).toEqual([
      "ERROR invalid FAILPOINTS: startup failpoints: missing action on the 1th failpoint; try `oops=return`",
    ]);
  });
  test("--pgbin that is not a postgres binary", async () => {
    const cfg = await file("ok.json", emptyConfig({ keys: [] }));
    await refused(
      ["-D", "/x", "-C", CONNSTR, "-i", "c", "-c", cfg, "-b", `${PG_BINDIR}/pg_ctl`],
      1,
      `ERROR bad pgbin '${PG_BINDIR}/pg_ctl': --pgbin must be the path of a binary named 'postgres'`,
    );
  });
  test("--pgbin with no pg_config beside it", async () => {
    const bin = join(dir, "nopgconfig", "bin");
    mkdirSync(bin, { recursive: true });
    symlinkSync(PGBIN, join(bin, "postgres"));
    const cfg = await file("ok.json", emptyConfig({ keys: [] }));
    await refused(
      ["-D", "/x", "-C", CONNSTR, "-i", "c", "-c", cfg, "-b", join(bin, "postgres")],
      1,
      `ERROR cannot run pg_config at ${join(bin, "pg_config")}: not found`,
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
      `ERROR unsupported Postgres version 13 ('PostgreSQL 13.9' from ${join(bin, "pg_config")}); supported: 14, 15, 16, 17`,
    );
  });
  test("an HTTP port already in use", async () => {
    const port = await freePort();
    const blocker = Bun.serve({ hostname: "::", port, fetch: () => new Response("busy") });
    try {
      const cfg = await file("ok.json", emptyConfig({ keys: [] }));
      await refused(
        [...base(), "-c", cfg, "--external-http-port", String(port)],
        1,
        `ERROR compute_ctl failed: failed to bind the compute_ctl external HTTP server to [::]:${port}: Failed to start server. Is port ${port} in use?`,
      );
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
    await refused(
      [...base(), "-S", "/x", "-c", "/y"],
      2,
      usage("the argument '--spec-path <FILE>' cannot be used with '--config <CONFIG>'"),
    );
  });
});
