// Vanilla Postgres 15 accepts the postgresql.conf we render, and reads back the values we meant:
// the escaping of string settings, the neon.* placeholders, the mode lines, the audit and
// lakebase blocks, and the temporary override file picked up through include_if_exists.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, chownSync } from "node:fs";
import { join } from "node:path";
import { decode } from "../../src/api/decode.ts";
import { parseSpec } from "../../src/api/parsed-spec.ts";
import { ComputeSpec } from "../../src/api/spec.ts";
import { type ConfInputs, writePostgresConf } from "../../src/postgres/conf.ts";
import { withTmpOverride } from "../../src/postgres/files.ts";
import { freePort } from "../support/ports.ts";
import {
  cleanup,
  collectStream,
  makeUserDir,
  RUN_AS,
  type StreamBuffer,
  spawnAs,
  waitFor,
} from "../support/proc.ts";
import { type Json, minimalSpec } from "../unit/api/helpers.ts";

const PG_BINDIR = process.env.PG_BINDIR ?? "/usr/lib/postgresql/15/bin";
const ESCAPING = "here's a backslash \\ and a quote ' and a double-quote \" hooray";

let dir: string;
let pgdata: string;

beforeAll(async () => {
  dir = await makeUserDir("conf-");
  pgdata = join(dir, "pgdata");
  const initdb = spawnAs(
    [`${PG_BINDIR}/initdb`, "-D", pgdata, "-U", "cloud_admin", "--auth=trust", "--no-sync"],
    { env: { LC_ALL: "C.UTF-8" } },
  );
  const out = collectStream(initdb.stderr);
  if ((await initdb.exited) !== 0) throw new Error(`initdb failed: ${out.text}`);
}, 30_000);
afterAll(cleanup);

function inputsFor(doc: Json, over: Partial<ConfInputs> = {}): ConfInputs {
  return {
    pspec: parseSpec(decode(ComputeSpec, doc)),
    privilegedRoleName: "neon_superuser",
    internalHttpPort: 3081,
    tls: null,
    platform: "linux",
    overcommitMemory: "0",
    ...over,
  };
}

interface Running {
  port: number;
  log: StreamBuffer;
  stop(): Promise<void>;
}

/** Writes the rendered conf plus local overrides, starts postgres, waits until it answers. */
async function startWith(inputs: ConfInputs): Promise<Running> {
  await writePostgresConf(pgdata, inputs);
  const port = await freePort();
  // After the include line on purpose: only what a test box needs differs from the real file.
  // neon.so does not exist here, and the test must not listen on TCP or a shared socket dir.
  appendFileSync(
    join(pgdata, "postgresql.conf"),
    `port=${port}\nunix_socket_directories='${dir}'\nlisten_addresses=''\nshared_preload_libraries=''\n`,
  );
  if (RUN_AS) chownSync(join(pgdata, "postgresql.conf"), RUN_AS.uid, RUN_AS.gid);

  const proc = spawnAs([`${PG_BINDIR}/postgres`, "-D", pgdata]);
  const log = collectStream(proc.stderr, { prefix: "[postgres] " });
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`postgres exited: ${log.text}`);
      return (await psql(port, ["SELECT 1"])) === "1";
    },
    { timeoutMs: 15_000, what: "postgres to accept connections" },
  ).catch((err) => {
    throw new Error(`${err.message}\npostgres log:\n${log.text}`);
  });
  return {
    port,
    log,
    async stop() {
      proc.kill("SIGINT"); // fast shutdown
      await Promise.race([proc.exited, Bun.sleep(10_000)]);
    },
  };
}

/** Runs each statement with psql and returns the unaligned output, one line per statement. */
async function psql(port: number, statements: string[]): Promise<string> {
  const args = ["/usr/bin/psql", "-h", dir, "-p", String(port), "-U", "cloud_admin"];
  args.push("-d", "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1");
  for (const s of statements) args.push("-c", s);
  const p = Bun.spawn(args, { stdout: "pipe", stderr: "pipe", env: { ...process.env } });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`psql failed (${code}): ${err}`);
  return out.replace(/\n$/, "");
}

async function show(port: number, gucs: string[]): Promise<Record<string, string>> {
  const out = await psql(
    port,
    gucs.map((g) => `SHOW "${g}"`),
  );
  const values = out.split("\n");
  return Object.fromEntries(gucs.map((g, i) => [g, values[i] ?? "<missing>"]));
}

describe("vanilla Postgres 15 accepts the rendered postgresql.conf", () => {
  test("Primary: escaped settings, ids, audit, mmap, subscribers, syslog, tmp override", async () => {
    const doc = minimalSpec();
    doc.safekeepers_generation = 3;
    doc.safekeeper_connstrings = ["sk-0:5454", "sk-1:5454"];
    doc.endpoint_id = "ep-it's";
    doc.project_id = "back\\slash";
    doc.drop_subscriptions_before_start = true;
    doc.logs_export_host = "127.0.0.1:10514";
    doc.audit_log_level = "Full";
    doc.cluster.settings = [
      { name: "test.escaping", value: ESCAPING, vartype: "string" },
      { name: "work_mem", value: "8192", vartype: "integer" },
      { name: "fsync", value: "off", vartype: "bool" },
      { name: "wal_level", value: "logical", vartype: "enum" },
      { name: "cluster_name", value: "it's mine", vartype: "string" },
      { name: "shared_preload_libraries", value: "neon", vartype: "string" },
    ];
    const pg = await startWith(inputsFor(doc, { overcommitMemory: "2\n" }));
    try {
      expect(
        await show(pg.port, [
          "test.escaping",
          "cluster_name",
          "work_mem",
          "fsync",
          "wal_level",
          "neon.compute_mode",
          "neon.safekeepers",
          "neon.endpoint_id",
          "neon.project_id",
          "neon.pageserver_connstring",
          "lc_messages",
          "lc_numeric",
          "dynamic_shared_memory_type",
          "neon.privileged_role_name",
          "pgaudit.log",
          "pgaudit.log_parameter",
          "neon.extension_server_port",
          "neon.disable_logical_replication_subscribers",
          "log_destination",
        ]),
      ).toEqual({
        "test.escaping": ESCAPING,
        cluster_name: "it's mine",
        work_mem: "8MB",
        fsync: "off",
        wal_level: "logical",
        "neon.compute_mode": "primary",
        "neon.safekeepers": "g#3:sk-0:5454,sk-1:5454",
        "neon.endpoint_id": "ep-it's",
        "neon.project_id": "back\\slash",
        "neon.pageserver_connstring": "postgres://no_user@localhost:64000",
        lc_messages: "C.UTF-8",
        lc_numeric: "C.UTF-8",
        dynamic_shared_memory_type: "mmap",
        "neon.privileged_role_name": "neon_superuser",
        "pgaudit.log": "all",
        "pgaudit.log_parameter": "on",
        "neon.extension_server_port": "3081",
        "neon.disable_logical_replication_subscribers": "true",
        log_destination: "stderr,syslog",
      });

      // The override file is read through include_if_exists while it has content.
      await withTmpOverride(pgdata, "neon.max_cluster_size=-1", async () => {
        await psql(pg.port, ["SELECT pg_reload_conf()"]);
        await waitFor(
          async () => (await show(pg.port, ["neon.max_cluster_size"]))["neon.max_cluster_size"],
          { timeoutMs: 5_000, what: "the override to be loaded" },
        ).then((v) => expect(v).toBe("-1"));
      });
      expect(pg.log.text).not.toMatch(/syntax error|invalid value|unrecognized/);
    } finally {
      await pg.stop();
    }
  }, 30_000);

  test("Replica with sharded connection info", async () => {
    const doc = minimalSpec();
    doc.mode = "Replica";
    doc.safekeeper_connstrings = [];
    doc.cluster.settings = [];
    doc.pageserver_connection_info = {
      shard_count: 2,
      stripe_size: 32768,
      shards: {
        "0002": { pageservers: [{ libpq_url: "postgres://ps1:6400" }] },
        "0102": { pageservers: [{ libpq_url: "postgres://ps2:6400" }] },
      },
    };
    const pg = await startWith(inputsFor(doc));
    try {
      expect(
        await show(pg.port, [
          "neon.compute_mode",
          "hot_standby",
          "neon.stripe_size",
          "neon.pageserver_connstring",
        ]),
      ).toEqual({
        "neon.compute_mode": "replica",
        hot_standby: "on",
        "neon.stripe_size": "32768",
        "neon.pageserver_connstring": "postgres://ps1:6400,postgres://ps2:6400",
      });
    } finally {
      await pg.stop();
    }
  }, 30_000);

  test("Static with the lakebase block", async () => {
    const doc = minimalSpec();
    doc.mode = { Static: "0/16b5a50" };
    doc.audit_log_level = "Base";
    doc.databricks_settings = {
      pg_compute_tls_settings: { cert_file: "/x/c.crt", key_file: "/x/c.key", ca_file: "/x/ca" },
      databricks_pg_hba: "/x/hba",
      databricks_pg_ident: "/x/ident",
      databricks_workspace_host: "ws.example.com",
    };
    const pg = await startWith(inputsFor(doc, { lakebase: { connstrPort: 1 } }));
    try {
      expect(
        await show(pg.port, [
          "neon.compute_mode",
          "hot_standby",
          "recovery_target_lsn",
          "pgaudit.log",
          "databricks.workspace_url",
          "ssl_ca_file",
          "port",
        ]),
      ).toEqual({
        "neon.compute_mode": "static",
        hot_standby: "on",
        recovery_target_lsn: "0/16B5A50",
        "pgaudit.log": "ddl,role",
        "databricks.workspace_url": "ws.example.com",
        ssl_ca_file: "/x/ca",
        port: String(pg.port),
      });
    } finally {
      await pg.stop();
    }
  }, 30_000);
});
