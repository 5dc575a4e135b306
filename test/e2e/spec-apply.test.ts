// Spec application through the compiled binary and the local stack: the apply on a primary's
// first start, /configure on a running compute (changes, concurrency, skip, failure), a replica
// that applies nothing, and the reference's `compute-migration` failpoint. The apply runs
// `CREATE EXTENSION neon`, so the SQL-only stub is installed as root; without root the primary
// tests are skipped with the reason printed.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, createHmac, pbkdf2Sync } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { decode } from "../../src/api/decode.ts";
import { ComputeSpec } from "../../src/api/spec.ts";
import { applySpecSql } from "../../src/spec/apply.ts";
import { catalogSnapshot } from "../integration/spec/catalog-snapshot.ts";
import { runBinary } from "../support/binary.ts";
import { type Json, jsonOf, minimalSpec, writeUserFile } from "../support/compute.ts";
import { installNeonStub } from "../support/neon-stub.ts";
import { startTestPostgres } from "../support/pg.ts";
import { freePort } from "../support/ports.ts";
import { cleanup, makeUserDir, waitFor } from "../support/proc.ts";
import { psql, type Started, start, statusOf, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

const stub = installNeonStub();
if (!stub.installed) console.warn(`skipping the primary spec-apply e2e tests: ${stub.reason}`);
const primaryTest = stub.installed ? test : test.skip;

/** The control plane's md5 form: md5(password || user) in hex, without the `md5` prefix. */
const md5 = (password: string, user: string) =>
  createHash("md5")
    .update(password + user)
    .digest("hex");

/** A SCRAM-SHA-256 verifier as Postgres stores it (RFC 5802 / 7677). */
function scram(password: string, salt = "c2FsdHNhbHRzYWx0"): string {
  const salted = pbkdf2Sync(password, Buffer.from(salt, "base64"), 4096, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest("base64");
  const serverKey = createHmac("sha256", salted).update("Server Key").digest("base64");
  return `SCRAM-SHA-256$4096:${salt}$${storedKey}:${serverKey}`;
}

const BOB_SCRAM = scram("bob's secret");
const ROLES = [
  { name: "alice", encrypted_password: md5("alice pw", "alice") },
  { name: "bob", encrypted_password: BOB_SCRAM },
  { name: "carol", encrypted_password: null },
];
const DATABASES = [
  { name: "app", owner: "alice" },
  { name: "data db", owner: "bob" },
];

/** The cluster after the /configure that renames bob and adds dave. */
const AFTER = {
  roles: [
    ROLES[0],
    { name: "robert", encrypted_password: BOB_SCRAM },
    ROLES[2],
    { name: "dave", encrypted_password: md5("dave pw", "dave") },
  ],
  databases: [DATABASES[0], { name: "data db", owner: "robert" }],
};

const json = (body: unknown): RequestInit => ({
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

/** The stack's spec with cluster fields and top-level fields replaced. */
function changed(s: Started, cluster: Json, top: Json = {}): Json {
  const base = s.stack.spec as Json;
  return { ...base, ...top, cluster: { ...base.cluster, ...cluster } };
}

function withSetting(s: Started, name: string, value: string): Json[] {
  const settings = (s.stack.spec as Json).cluster.settings as Json[];
  return [...settings, { name, value, vartype: "string" }];
}

async function configure(s: Started, spec: Json) {
  const r = await s.compute.post(
    "/configure",
    s.token,
    json({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
  );
  return { code: r.status, body: await jsonOf(r) };
}

const overrideFile = (s: Started) =>
  readFile(join(s.stack.pgdata, "compute_ctl_temp_override.conf"), "utf8");
const conf = (s: Started) => readFile(join(s.stack.pgdata, "postgresql.conf"), "utf8");

describe("Primary", () => {
  let s: Started;

  primaryTest("the first start applies roles and databases", async () => {
    s = await start({ skipCatalogUpdates: false, roles: ROLES, databases: DATABASES });
    await waitStatus(s, "running");
    expect(
      await psql(
        s,
        "SELECT string_agg(rolname || ' ' || coalesce(rolpassword, '-') || ' ' || pg_has_role(rolname, 'neon_superuser', 'member'), E'\\n' ORDER BY rolname) FROM pg_authid WHERE rolname IN ('alice', 'bob', 'carol')",
      ),
    ).toBe(
      [`alice md5${md5("alice pw", "alice")} true`, `bob ${BOB_SCRAM} true`, "carol - true"].join(
        "\n",
      ),
    );
    expect(
      await psql(
        s,
        "SELECT string_agg(datname || ':' || pg_get_userbyid(datdba), ',' ORDER BY datname) FROM pg_database WHERE datname IN ('app', 'data db')",
      ),
    ).toBe("app:alice,data db:bob");
    // The temporary override is emptied once the apply is done; the subscribers line is appended.
    expect(await overrideFile(s)).toBe("");
    expect((await conf(s)).split("\n")).toContain(
      "neon.disable_logical_replication_subscribers=false",
    );
    expect(await psql(s, "SHOW neon.disable_logical_replication_subscribers")).toBe("false");
    expect(await psql(s, "SHOW neon.max_cluster_size")).not.toBe("-1");
  });

  primaryTest("/configure applies a changed spec and reloads the new settings", async () => {
    const spec = changed(
      s,
      {
        roles: AFTER.roles,
        databases: AFTER.databases,
        settings: withSetting(s, "log_line_prefix", "%m reconf:"),
      },
      { delta_operations: [{ action: "rename_role", name: "bob", new_name: "robert" }] },
    );
    const r = await configure(s, spec);
    expect(r.code).toBe(200);
    expect(r.body.status).toBe("running");
    expect(
      await psql(
        s,
        "SELECT string_agg(rolname || ' ' || coalesce(rolpassword, '-'), E'\\n' ORDER BY rolname) FROM pg_authid WHERE rolname IN ('bob', 'robert', 'dave')",
      ),
    ).toBe(`dave md5${md5("dave pw", "dave")}\nrobert ${BOB_SCRAM}`);
    expect(
      await psql(s, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'data db'"),
    ).toBe("robert");
    expect(await psql(s, "SHOW log_line_prefix")).toBe("%m reconf:");
    expect(await overrideFile(s)).toBe("");
  });

  primaryTest("a second /configure while one runs is refused with 412", async () => {
    // Many new roles keep the first one busy long enough for the second to arrive.
    const many = Array.from({ length: 200 }, (_, i) => ({
      name: `busy_${i}`,
      encrypted_password: null,
    }));
    const first = changed(s, { ...AFTER, roles: [...AFTER.roles, ...many] });
    const [a, b] = await Promise.all([configure(s, first), configure(s, first)]);
    const codes = [a.code, b.code].sort();
    expect(codes).toEqual([200, 412]);
    const refused = a.code === 412 ? a : b;
    expect(refused.body.error).toMatch(/^invalid compute status: configuration/);
    expect(await psql(s, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'busy\\_%'")).toBe(
      "200",
    );
  });

  primaryTest(
    "skip_pg_catalog_updates on /configure: conf rewritten and reloaded, no catalog work",
    async () => {
      const spec = changed(
        s,
        {
          ...AFTER,
          roles: [...AFTER.roles, { name: "skipped_role", encrypted_password: null }],
          settings: withSetting(s, "log_line_prefix", "%m skipped:"),
        },
        { skip_pg_catalog_updates: true },
      );
      const r = await configure(s, spec);
      expect(r.code).toBe(200);
      expect(await psql(s, "SHOW log_line_prefix")).toBe("%m skipped:");
      expect(await conf(s)).toContain("\nlog_line_prefix = '%m skipped:'\n");
      expect(await psql(s, "SELECT count(*) FROM pg_roles WHERE rolname = 'skipped_role'")).toBe(
        "0",
      );
    },
  );

  primaryTest(
    "a failed reconfigure: 500, status failed, Postgres keeps running, later /configure 412",
    async () => {
      // CREATE DATABASE … OWNER of a role that exists nowhere fails inside the apply.
      const spec = changed(s, {
        ...AFTER,
        databases: [...AFTER.databases, { name: "orphan", owner: "ghost" }],
      });
      const r = await configure(s, spec);
      expect(r.code).toBe(500);
      expect(r.body.error).toMatch(/^compute configuration failed: ".*ghost.*"$/);
      const st = await statusOf(s);
      expect(st.status).toBe("failed");
      expect(st.error).toContain('role "ghost" does not exist');
      // As in the reference, the compute stays failed with Postgres up; only a restart recovers.
      expect(await psql(s, "SELECT 1")).toBe("1");
      expect(await overrideFile(s)).toBe("");
      const again = await configure(s, changed(s, AFTER));
      expect(again.code).toBe(412);
      expect(again.body.error).toBe("invalid compute status: failed");
      expect((await statusOf(s)).status).toBe("failed");
    },
  );
});

describe("Replica", () => {
  test("nothing is applied, on start or on /configure", async () => {
    const s = await start({
      mode: "Replica",
      skipCatalogUpdates: false,
      roles: [{ name: "never_made", encrypted_password: null }],
      databases: [{ name: "never_db", owner: "never_made" }],
    });
    await waitStatus(s, "running");
    const none =
      "SELECT (SELECT count(*) FROM pg_roles WHERE rolname IN ('never_made', 'later')) + (SELECT count(*) FROM pg_database WHERE datname = 'never_db')";
    expect(await psql(s, none)).toBe("0");
    const r = await configure(
      s,
      changed(s, { roles: [{ name: "later", encrypted_password: null }] }),
    );
    expect(r.code).toBe(200);
    expect(await psql(s, none)).toBe("0");
  });
});

describe("compute-migration failpoint", () => {
  primaryTest("fails migration N: counted in /metrics, the id stays at N-1", async () => {
    const s = await start({
      skipCatalogUpdates: false,
      env: { COMPUTE_CTL_TESTING: "1", FAILPOINTS: "compute-migration=return(4)" },
    });
    await waitStatus(s, "running");
    const metric = 'compute_ctl_db_migration_failed_total{migration_id="4"} 1';
    await waitFor(async () => (await (await s.compute.get("/metrics")).text()).includes(metric), {
      what: "the migration failure counter",
      timeoutMs: 20_000,
    });
    expect(await psql(s, "SELECT id FROM neon_migration.migration_id")).toBe("3");
    // Migration 4's grant rolled back with it.
    expect(await psql(s, "SELECT pg_has_role('neon_superuser', 'pg_monitor', 'member')")).toBe("f");
    expect(s.compute.stderr.text).toContain(
      "migration 4 was configured to fail because of a failpoint",
    );
    expect((await statusOf(s)).status).toBe("running");
  });

  primaryTest("is ignored without COMPUTE_CTL_TESTING=1", async () => {
    const s = await start({
      skipCatalogUpdates: false,
      env: { FAILPOINTS: "compute-migration=return(4)" },
    });
    await waitStatus(s, "running");
    await waitFor(
      async () =>
        (await psql(s, "SELECT id FROM neon_migration.migration_id").catch(() => "")) === "12",
      { what: "all 12 migrations", timeoutMs: 20_000 },
    );
    expect(await (await s.compute.get("/metrics")).text()).not.toContain(
      "compute_ctl_db_migration_failed_total{",
    );
  });
});

describe("compute_ctl spec plan (dry run)", () => {
  primaryTest(
    "the printed plan, run through psql, gives the catalog compute_ctl's apply gives",
    async () => {
      const twin = await startTestPostgres();
      const fresh = await startTestPostgres();
      try {
        const spec = minimalSpec({
          cluster: {
            roles: [
              { name: "plan owner", encrypted_password: md5("p", "plan owner") },
              { name: `plan "q'`, encrypted_password: BOB_SCRAM },
            ],
            databases: [
              { name: "plan db=1 'x'", owner: "plan owner" },
              { name: `plan "q'`, owner: `plan "q'` },
            ],
          },
          delta_operations: [{ action: "delete_role", name: "nobody" }],
          skip_pg_catalog_updates: false,
        });
        const specFile = join(twin.dir, "spec.json");
        const configFile = join(twin.dir, "config.json");
        await writeUserFile(specFile, JSON.stringify(spec));
        await writeUserFile(
          configFile,
          JSON.stringify({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
        );
        const before = await twin.psql("SELECT count(*) FROM pg_roles");
        const viaSpec = await runBinary(["spec", "plan", "--connstr", twin.url, "-S", specFile]);
        expect(viaSpec.stderr).toBe("");
        expect(viaSpec.code).toBe(0);
        expect(viaSpec.stdout).toContain("CREATE DATABASE \"plan db=1 'x'\"");
        // -c reads a ComputeConfig to the same plan; planning ran nothing on the server.
        const viaConfig = await runBinary([
          "spec",
          "plan",
          "--connstr",
          twin.url,
          "-c",
          configFile,
        ]);
        expect(viaConfig.code).toBe(0);
        expect(viaConfig.stdout).toBe(viaSpec.stdout);
        expect(await twin.psql("SELECT count(*) FROM pg_roles")).toBe(before);

        const { stderr } = await twin.psqlScript(viaSpec.stdout, {
          pgoptions: "-c search_path= -c statement_timeout=0",
        });
        expect(stderr).not.toContain("ERROR");

        await applySpecSql(decode(ComputeSpec, spec), {
          connstr: new URL(fresh.url),
          privilegedRoleName: "neon_superuser",
          timelineId: spec.timeline_id,
          concurrency: 2,
        });
        expect(await catalogSnapshot(twin, "plan db=1 'x'")).toEqual(
          await catalogSnapshot(fresh, "plan db=1 'x'"),
        );
      } finally {
        await twin.stop();
        await fresh.stop();
      }
    },
  );

  test("a spec whose catalog updates a start would skip plans nothing, and says why", async () => {
    const dir = await makeUserDir("plan-skip-");
    // Nothing listens here: a plan that does not need the catalog must not connect.
    const closed = `postgresql://cloud_admin@127.0.0.1:${await freePort()}/postgres`;
    const cluster = { roles: [{ name: "r", encrypted_password: null }], databases: [] };
    for (const [name, spec, why] of [
      [
        "skip",
        minimalSpec({ cluster, skip_pg_catalog_updates: true }),
        "skip_pg_catalog_updates is set",
      ],
      [
        "replica",
        minimalSpec({ cluster, skip_pg_catalog_updates: false, mode: "Replica" }),
        "a replica compute is read-only",
      ],
    ] as const) {
      const specFile = join(dir, `${name}.json`);
      await writeUserFile(specFile, JSON.stringify(spec));
      const r = await runBinary(["spec", "plan", "--connstr", closed, "-S", specFile]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        code: 0,
        stdout: `-- nothing to run: ${why}\n`,
        stderr: "",
      });
    }
    // Without the skip the same spec needs the catalog: planning against nothing fails.
    const specFile = join(dir, "apply.json");
    await writeUserFile(
      specFile,
      JSON.stringify(minimalSpec({ cluster, skip_pg_catalog_updates: false })),
    );
    const r = await runBinary(["spec", "plan", "--connstr", closed, "-S", specFile]);
    expect(r.code).toBe(1);
  });

  test("usage errors exit 2 and connection errors exit 1, each with one line", async () => {
    const dir = await makeUserDir("plan-");
    const specFile = join(dir, "spec.json");
    await writeUserFile(specFile, JSON.stringify(minimalSpec()));
    const oneLine = (text: string) => text.trimEnd().split("\n").length === 1;
    for (const args of [
      ["spec"],
      ["spec", "apply"],
      ["spec", "plan", "-S", specFile],
      ["spec", "plan", "--connstr", "postgres://x@127.0.0.1/postgres"],
      ["spec", "plan", "--connstr", "postgres://x@h/p", "-S", specFile, "--bogus"],
      ["spec", "plan", "--connstr", "postgres://x@h/p", "-S", specFile, "-c", specFile],
      [
        "spec",
        "plan",
        "--connstr",
        "postgres://x@h/p",
        "-S",
        specFile,
        "--privileged-role-name",
        "Bad",
      ],
    ]) {
      const r = await runBinary(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toStartWith("error: ");
      expect(oneLine(r.stderr)).toBe(true);
      expect(r.stdout).toBe("");
    }
    const closed = `postgresql://cloud_admin@127.0.0.1:${await freePort()}/postgres`;
    await writeUserFile(specFile, JSON.stringify(minimalSpec({ skip_pg_catalog_updates: false })));
    const refused = await runBinary(["spec", "plan", "--connstr", closed, "-S", specFile]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toStartWith(`error: cannot plan against ${closed}: `);
    expect(oneLine(refused.stderr)).toBe(true);
    expect(refused.stdout).toBe("");
    const missing = await runBinary(["spec", "plan", "--connstr", closed, "-S", join(dir, "nope")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toStartWith("error: cannot read --spec-path file ");
  });
});
