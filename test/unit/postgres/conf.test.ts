// postgresql.conf rendering against goldens written by hand from the reference
// (compute_tools/src/config.rs write_postgres_conf, pg_helpers_tests.rs settings_serialize).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decode, parseJson } from "../../../src/api/decode.ts";
import { parseSpec } from "../../../src/api/parsed-spec.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import {
  type ConfInputs,
  escapeConfValue,
  readOvercommitMemory,
  renderPostgresConf,
  settingLine,
  tlsEnabled,
  writePostgresConf,
} from "../../../src/postgres/conf.ts";
import { errorMessage, fixtureText, type Json, minimalSpec } from "../api/helpers.ts";

/** Linux, overcommit heuristic (0), default role name, internal port 3081, no TLS. */
function inputsFor(doc: Json, over: Partial<ConfInputs> = {}): ConfInputs {
  return {
    pspec: parseSpec(decode(ComputeSpec, doc)),
    privilegedRoleName: "neon_superuser",
    internalHttpPort: 3081,
    tls: null,
    platform: "linux",
    overcommitMemory: "0\n",
    ...over,
  };
}

const render = (doc: Json, over: Partial<ConfInputs> = {}) =>
  renderPostgresConf(inputsFor(doc, over));

/** minimalSpec() plus a safekeeper generation and the optional ids. */
function primarySpec(): Json {
  const doc = minimalSpec();
  doc.safekeepers_generation = 3;
  doc.safekeeper_connstrings = ["sk-0:5454", "sk-1:5454", "sk-2:5454"];
  doc.project_id = "proj-1";
  doc.branch_id = "br-1";
  doc.endpoint_id = "ep-it's";
  return doc;
}

const PRIMARY = `shared_preload_libraries='neon'
# Neon storage settings

# from compute spec's pageserver_connstring field
neon.pageserver_connstring='postgres://no_user@localhost:64000'
neon.safekeepers='g#3:sk-0:5454,sk-1:5454,sk-2:5454'
neon.tenant_id='b0554b632bd4d547a63b86c3630317e8'
neon.timeline_id='2414a61ffc94e428f14b5758fe308e13'
neon.project_id='proj-1'
neon.branch_id='br-1'
neon.endpoint_id='ep-it''s'
lc_messages='C.UTF-8'
lc_monetary='C.UTF-8'
lc_time='C.UTF-8'
lc_numeric='C.UTF-8'
neon.compute_mode=primary
neon.privileged_role_name='neon_superuser'
neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
include_if_exists = 'compute_ctl_temp_override.conf'
`;

/** Everything of minimalSpec()'s conf up to and including the compute mode line. */
const MINIMAL_HEAD = `shared_preload_libraries='neon'
# Neon storage settings

# from compute spec's pageserver_connstring field
neon.pageserver_connstring='postgres://no_user@localhost:64000'
neon.safekeepers='localhost:5454'
neon.tenant_id='b0554b632bd4d547a63b86c3630317e8'
neon.timeline_id='2414a61ffc94e428f14b5758fe308e13'
lc_messages='C.UTF-8'
lc_monetary='C.UTF-8'
lc_time='C.UTF-8'
lc_numeric='C.UTF-8'
neon.compute_mode=primary
`;

const ROLE_LINE = "neon.privileged_role_name='neon_superuser'\n";

const TAIL = `neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
include_if_exists = 'compute_ctl_temp_override.conf'
`;

// settings_serialize in compute_tools/tests/pg_helpers_tests.rs, for the compute_api fixture.
const SETTINGS_SERIALIZE = String.raw`fsync = off
wal_level = logical
hot_standby = on
autoprewarm = off
offload_lfc_interval_seconds = 20
neon.safekeepers = '127.0.0.1:6502,127.0.0.1:6503,127.0.0.1:6501'
wal_log_hints = on
log_connections = on
shared_buffers = 32768
port = 55432
max_connections = 100
max_wal_senders = 10
listen_addresses = '0.0.0.0'
wal_sender_timeout = 0
password_encryption = md5
maintenance_work_mem = 65536
max_parallel_workers = 8
max_worker_processes = 8
neon.tenant_id = 'b0554b632bd4d547a63b86c3630317e8'
max_replication_slots = 10
neon.timeline_id = '2414a61ffc94e428f14b5758fe308e13'
shared_preload_libraries = 'neon'
synchronous_standby_names = 'walproposer'
neon.pageserver_connstring = 'host=127.0.0.1 port=6400'
test.escaping = 'here''s a backslash \\ and a quote '' and a double-quote " hooray'
`;

describe("escapeConfValue and settingLine", () => {
  test("quotes double, then backslashes double, always wrapped", () => {
    expect(escapeConfValue("")).toBe("''");
    expect(escapeConfValue("plain")).toBe("'plain'");
    expect(escapeConfValue("it's")).toBe("'it''s'");
    expect(escapeConfValue("a\\b")).toBe("'a\\\\b'");
    expect(escapeConfValue("\\'")).toBe("'\\\\'''");
  });

  test("string vartype is quoted, others are raw, null is skipped", () => {
    expect(settingLine({ name: "a.b", value: "x y", vartype: "string" })).toBe("a.b = 'x y'");
    expect(settingLine({ name: "work_mem", value: "64MB", vartype: "integer" })).toBe(
      "work_mem = 64MB",
    );
    expect(settingLine({ name: "wal_level", value: "'logical'", vartype: "enum" })).toBe(
      "wal_level = 'logical'",
    );
    expect(settingLine({ name: "fsync", value: null, vartype: "bool" })).toBeNull();
  });
});

describe("no value can add a line (the reference writes these raw)", () => {
  test("control characters become the conf parser's backslash escapes", () => {
    expect(escapeConfValue("a\nb")).toBe("'a\\nb'");
    expect(escapeConfValue("a\r\n\tb\b\f")).toBe("'a\\r\\n\\tb\\b\\f'");
    expect(escapeConfValue("\x01\x1f")).toBe("'\\001\\037'");
    expect(() => escapeConfValue("a\0b")).toThrow("NUL");
  });

  test("a non-string value that is not one token is quoted like a string", () => {
    const line = (value: string, vartype = "integer") =>
      settingLine({ name: "work_mem", value, vartype });
    expect(line("4096\nacc_inj.k40 = 'pwned'")).toBe("work_mem = '4096\\nacc_inj.k40 = ''pwned'''");
    expect(line("4096 # comment")).toBe("work_mem = '4096 # comment'");
    expect(line("it's", "enum")).toBe("work_mem = 'it''s'");
    expect(line("")).toBe("work_mem = ''");
    expect(line("'a\rb'")).toBe("work_mem = '''a\\rb'''");
    for (const raw of ["64MB", "-1", "0x1F", "1.5e3", ".5", "on", "a.b:c/d-e", "'quoted'"]) {
      expect(line(raw)).toBe(`work_mem = ${raw}`);
    }
  });

  test("names outside the conf grammar are refused when rendering", () => {
    expect(() => settingLine({ name: "a\nb", value: "1", vartype: "integer" })).toThrow(
      "invalid configuration parameter name",
    );
    expect(() => settingLine({ name: "a.b.c", value: "1", vartype: "integer" })).toThrow();
  });

  test("every rendered field is escaped: ids, connstrings, safekeepers, audit libraries", () => {
    const doc = primarySpec();
    doc.endpoint_id = "ep\nx = 'y'";
    doc.project_id = "p\n";
    doc.branch_id = "b\r";
    doc.pageserver_connstring = "host=h\nport=1";
    doc.safekeeper_connstrings = ["sk-0:1\nsk = 'x'"];
    doc.audit_log_level = "Base";
    (doc.cluster as Record<string, unknown>).settings = [
      { name: "shared_preload_libraries", value: "neon'\nevil = 'x", vartype: "string" },
    ];
    const text = render(doc);
    for (const line of text.split("\n")) expect(line).not.toMatch(/^(evil|sk|port|x) /);
    expect(text).toContain("neon.endpoint_id='ep\\nx = ''y'''\n");
    expect(text).toContain("shared_preload_libraries='neon''\\nevil = ''x,pgaudit'\n");
  });
});

describe("renderPostgresConf goldens", () => {
  test("compute_api fixture: settings_serialize between the managed markers", async () => {
    const doc = JSON.parse(await fixtureText("compute_api_cluster_spec.json"));
    const expected =
      "# Neon storage settings\n" +
      "\n" +
      "lc_messages='C.UTF-8'\n" +
      "lc_monetary='C.UTF-8'\n" +
      "lc_time='C.UTF-8'\n" +
      "lc_numeric='C.UTF-8'\n" +
      "neon.compute_mode=primary\n" +
      ROLE_LINE +
      "# Managed by compute_ctl: begin\n" +
      SETTINGS_SERIALIZE +
      "# Managed by compute_ctl: end\n" +
      TAIL;
    expect(render(doc)).toBe(expected);
    // The same through the text parser, as the file would be read.
    const text = await fixtureText("compute_api_cluster_spec.json");
    const pspec = parseSpec(parseJson(ComputeSpec, text));
    expect(renderPostgresConf({ ...inputsFor(doc), pspec })).toBe(expected);
  });

  test("minimal Primary with legacy connstring, generation prefix and ids", () => {
    expect(render(primarySpec())).toBe(PRIMARY);
  });

  test("Replica", () => {
    const doc = minimalSpec();
    doc.mode = "Replica";
    doc.safekeeper_connstrings = [];
    expect(render(doc)).toBe(`shared_preload_libraries='neon'
# Neon storage settings

# from compute spec's pageserver_connstring field
neon.pageserver_connstring='postgres://no_user@localhost:64000'
neon.tenant_id='b0554b632bd4d547a63b86c3630317e8'
neon.timeline_id='2414a61ffc94e428f14b5758fe308e13'
lc_messages='C.UTF-8'
lc_monetary='C.UTF-8'
lc_time='C.UTF-8'
lc_numeric='C.UTF-8'
neon.compute_mode=replica
hot_standby=on
neon.privileged_role_name='neon_superuser'
neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
include_if_exists = 'compute_ctl_temp_override.conf'
`);
  });

  test("Static pins the (canonical upper-case) LSN", () => {
    const doc = minimalSpec();
    doc.mode = { Static: "0/16b5a50" };
    expect(render(doc)).toBe(`shared_preload_libraries='neon'
# Neon storage settings

# from compute spec's pageserver_connstring field
neon.pageserver_connstring='postgres://no_user@localhost:64000'
neon.safekeepers='localhost:5454'
neon.tenant_id='b0554b632bd4d547a63b86c3630317e8'
neon.timeline_id='2414a61ffc94e428f14b5758fe308e13'
lc_messages='C.UTF-8'
lc_monetary='C.UTF-8'
lc_time='C.UTF-8'
lc_numeric='C.UTF-8'
neon.compute_mode=static
hot_standby=on
recovery_target_lsn='0/16B5A50'
neon.privileged_role_name='neon_superuser'
neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
include_if_exists = 'compute_ctl_temp_override.conf'
`);
  });

  test("legacy sharded connstring: stripe size first, from the spec fields", () => {
    const doc = minimalSpec();
    delete doc.cluster.postgresql_conf;
    doc.pageserver_connstring = "host=ps1 port=6400,host=ps2 port=6400";
    doc.shard_stripe_size = 2048;
    expect(render(doc)).toBe(`# Neon storage settings

# from compute spec's shard_stripe_size field
neon.stripe_size=2048
# from compute spec's pageserver_connstring field
neon.pageserver_connstring='host=ps1 port=6400,host=ps2 port=6400'
neon.safekeepers='localhost:5454'
neon.tenant_id='b0554b632bd4d547a63b86c3630317e8'
neon.timeline_id='2414a61ffc94e428f14b5758fe308e13'
lc_messages='C.UTF-8'
lc_monetary='C.UTF-8'
lc_time='C.UTF-8'
lc_numeric='C.UTF-8'
neon.compute_mode=primary
neon.privileged_role_name='neon_superuser'
neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
include_if_exists = 'compute_ctl_temp_override.conf'
`);
  });

  test("connstring only in cluster.settings: no storage lines outside the settings block", () => {
    const doc = minimalSpec();
    delete doc.pageserver_connstring;
    doc.cluster.postgresql_conf = null;
    doc.cluster.settings = [
      { name: "neon.pageserver_connstring", value: "host=ps port=6400", vartype: "string" },
    ];
    expect(render(doc)).toBe(`# Neon storage settings

neon.safekeepers='localhost:5454'
neon.tenant_id='b0554b632bd4d547a63b86c3630317e8'
neon.timeline_id='2414a61ffc94e428f14b5758fe308e13'
lc_messages='C.UTF-8'
lc_monetary='C.UTF-8'
lc_time='C.UTF-8'
lc_numeric='C.UTF-8'
neon.compute_mode=primary
neon.privileged_role_name='neon_superuser'
# Managed by compute_ctl: begin
neon.pageserver_connstring = 'host=ps port=6400'
# Managed by compute_ctl: end
neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
include_if_exists = 'compute_ctl_temp_override.conf'
`);
  });

  const twoShards = (second: Json) => ({
    shard_count: 2,
    stripe_size: 32768,
    shards: {
      "0002": {
        pageservers: [
          { id: 1, libpq_url: "postgres://ps1:6400", grpc_url: "grpc://ps1:51051" },
          { id: 9, libpq_url: "postgres://ignored:6400" },
        ],
      },
      "0102": { pageservers: [second] },
    },
  });

  const SHARDED_REST = `neon.safekeepers='localhost:5454'
neon.tenant_id='b0554b632bd4d547a63b86c3630317e8'
neon.timeline_id='2414a61ffc94e428f14b5758fe308e13'
lc_messages='C.UTF-8'
lc_monetary='C.UTF-8'
lc_time='C.UTF-8'
lc_numeric='C.UTF-8'
neon.compute_mode=primary
neon.privileged_role_name='neon_superuser'
neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
include_if_exists = 'compute_ctl_temp_override.conf'
`;

  test("pageserver_connection_info with 2 shards wins over the legacy fields", () => {
    const doc = minimalSpec();
    doc.cluster.postgresql_conf = null;
    doc.pageserver_connection_info = twoShards({ id: 2, libpq_url: "postgres://ps2:6400" });
    doc.shard_stripe_size = 1; // ignored: connection info is present
    expect(render(doc)).toBe(
      `# Neon storage settings

# from compute spec's pageserver_connection_info.stripe_size field
neon.stripe_size=32768
# derived from compute spec's pageserver_connection_info field
neon.pageserver_connstring='postgres://ps1:6400,postgres://ps2:6400'
` + SHARDED_REST,
    );
  });

  test("a shard without libpq_url: no connstring at all", () => {
    const doc = minimalSpec();
    doc.cluster.postgresql_conf = null;
    doc.pageserver_connection_info = twoShards({ id: 2, grpc_url: "grpc://ps2:51051" });
    expect(render(doc)).toBe(
      `# Neon storage settings

# from compute spec's pageserver_connection_info.stripe_size field
neon.stripe_size=32768
# no neon.pageserver_connstring
` + SHARDED_REST,
    );
  });

  test("unsharded connection info (shard_count 0, key 0000, no stripe size)", () => {
    const doc = minimalSpec();
    doc.cluster.postgresql_conf = null;
    doc.pageserver_connection_info = {
      shard_count: 0,
      shards: { "0000": { pageservers: [{ libpq_url: "postgres://ps:6400" }] } },
    };
    expect(render(doc)).toBe(
      `# Neon storage settings

# derived from compute spec's pageserver_connection_info field
neon.pageserver_connstring='postgres://ps:6400'
` + SHARDED_REST,
    );
  });

  test("settings [] writes the markers around one empty line; absent writes nothing", () => {
    const doc = minimalSpec();
    expect(render(doc)).toBe(MINIMAL_HEAD + ROLE_LINE + TAIL);
    doc.cluster.settings = [];
    expect(render(doc)).toBe(
      MINIMAL_HEAD +
        ROLE_LINE +
        "# Managed by compute_ctl: begin\n\n# Managed by compute_ctl: end\n" +
        TAIL,
    );
  });

  test("a setting with a null value is left out (the reference writes a bare name)", () => {
    const doc = minimalSpec();
    doc.cluster.settings = [
      { name: "work_mem", value: null, vartype: "integer" },
      { name: "work_mem", value: "8MB", vartype: "integer" },
    ];
    expect(render(doc)).toBe(
      MINIMAL_HEAD +
        ROLE_LINE +
        "# Managed by compute_ctl: begin\nwork_mem = 8MB\n# Managed by compute_ctl: end\n" +
        TAIL,
    );
  });

  describe("audit blocks", () => {
    const withAudit = (level: string, preload: string | null) => {
      const doc = minimalSpec();
      doc.audit_log_level = level;
      if (preload !== null) {
        doc.cluster.settings = [
          { name: "shared_preload_libraries", value: preload, vartype: "string" },
        ];
      }
      return render(doc);
    };
    const settingsBlock = (preload: string) =>
      "# Managed by compute_ctl: begin\n" +
      `shared_preload_libraries = '${preload}'\n` +
      "# Managed by compute_ctl: end\n";

    for (const level of ["Log", "Base"]) {
      test(`${level}: ddl,role and pgaudit appended`, () => {
        expect(withAudit(level, "neon")).toBe(
          MINIMAL_HEAD +
            ROLE_LINE +
            settingsBlock("neon") +
            `# Managed by compute_ctl base audit settings: start
pgaudit.log='ddl,role'
pgaudit.log_catalog=off
shared_preload_libraries='neon,pgaudit'
# Managed by compute_ctl base audit settings: end
` +
            TAIL,
        );
      });
    }

    test("Base without settings falls back to neon,pgaudit; present pgaudit is kept", () => {
      expect(withAudit("Base", null)).toBe(
        MINIMAL_HEAD +
          ROLE_LINE +
          `# Managed by compute_ctl base audit settings: start
pgaudit.log='ddl,role'
pgaudit.log_catalog=off
shared_preload_libraries='neon,pgaudit'
# Managed by compute_ctl base audit settings: end
` +
          TAIL,
      );
      expect(withAudit("Base", "pgaudit,neon")).toContain(
        "\nshared_preload_libraries='pgaudit,neon'\n",
      );
    });

    for (const level of ["Hipaa", "Extended"]) {
      test(`${level}: all but misc, no parameters, both libraries`, () => {
        expect(withAudit(level, "neon")).toBe(
          MINIMAL_HEAD +
            ROLE_LINE +
            settingsBlock("neon") +
            `# Managed by compute_ctl compliance audit settings: begin
pgaudit.log_parameter=off
pgaudit.log='all, -misc'
pgaudit.log_catalog=off
pgaudit.log_rotation_age=5
shared_preload_libraries='neon,pgaudit,pgauditlogtofile'
# Managed by compute_ctl compliance audit settings: end
` +
            TAIL,
        );
      });
    }

    test("Full without settings: everything with parameters, default libraries", () => {
      expect(withAudit("Full", null)).toBe(
        MINIMAL_HEAD +
          ROLE_LINE +
          `# Managed by compute_ctl compliance audit settings: begin
pgaudit.log_parameter=on
pgaudit.log='all'
pgaudit.log_catalog=off
pgaudit.log_rotation_age=5
shared_preload_libraries='neon,pgaudit,pgauditlogtofile'
# Managed by compute_ctl compliance audit settings: end
` +
          TAIL,
      );
    });

    test("the library check is a substring test", () => {
      // "pgauditlogtofile" contains "pgaudit", so nothing is appended.
      expect(withAudit("Full", "neon,pgauditlogtofile")).toContain(
        "\nshared_preload_libraries='neon,pgauditlogtofile'\n",
      );
      expect(withAudit("Hipaa", "neon,pgaudit")).toContain(
        "\nshared_preload_libraries='neon,pgaudit,pgauditlogtofile'\n",
      );
    });
  });

  test("drop_subscriptions_before_start and logs_export_host", () => {
    const doc = minimalSpec();
    doc.drop_subscriptions_before_start = true;
    doc.logs_export_host = "logs.example.com:10514";
    expect(render(doc)).toBe(
      MINIMAL_HEAD +
        ROLE_LINE +
        `neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=true
log_destination='stderr,syslog'
include_if_exists = 'compute_ctl_temp_override.conf'
`,
    );
  });

  test("macOS uses the C locale and never looks at overcommit", () => {
    expect(render(minimalSpec(), { platform: "darwin", overcommitMemory: "2\n" })).toBe(
      `shared_preload_libraries='neon'
# Neon storage settings

# from compute spec's pageserver_connstring field
neon.pageserver_connstring='postgres://no_user@localhost:64000'
neon.safekeepers='localhost:5454'
neon.tenant_id='b0554b632bd4d547a63b86c3630317e8'
neon.timeline_id='2414a61ffc94e428f14b5758fe308e13'
lc_messages='C'
lc_monetary='C'
lc_time='C'
lc_numeric='C'
neon.compute_mode=primary
neon.privileged_role_name='neon_superuser'
neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
include_if_exists = 'compute_ctl_temp_override.conf'
`,
    );
  });

  test("overcommit_memory 2 on Linux switches dynamic shared memory to mmap", () => {
    const doc = minimalSpec();
    const withMmap = MINIMAL_HEAD + "dynamic_shared_memory_type = mmap\n" + ROLE_LINE + TAIL;
    expect(render(doc, { overcommitMemory: "2\n" })).toBe(withMmap);
    expect(render(doc, { overcommitMemory: " 2 " })).toBe(withMmap);
    expect(render(doc, { overcommitMemory: "1\n" })).toBe(MINIMAL_HEAD + ROLE_LINE + TAIL);
    expect(render(doc, { overcommitMemory: null })).toBe(MINIMAL_HEAD + ROLE_LINE + TAIL);
  });

  test("privileged role name is escaped", () => {
    expect(render(minimalSpec(), { privilegedRoleName: "o'brien" })).toBe(
      MINIMAL_HEAD + "neon.privileged_role_name='o''brien'\n" + TAIL,
    );
  });

  describe("TLS", () => {
    const tls = { key_path: "/etc/tls/tls.key", cert_path: "/etc/tls/tls.crt" };
    const AFTER_IDS = `lc_messages='C.UTF-8'
lc_monetary='C.UTF-8'
lc_time='C.UTF-8'
lc_numeric='C.UTF-8'
neon.compute_mode=primary
neon.privileged_role_name='neon_superuser'
neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
include_if_exists = 'compute_ctl_temp_override.conf'
`;
    const BEFORE_TLS = `shared_preload_libraries='neon'
# Neon storage settings

# from compute spec's pageserver_connstring field
neon.pageserver_connstring='postgres://no_user@localhost:64000'
neon.safekeepers='localhost:5454'
neon.tenant_id='b0554b632bd4d547a63b86c3630317e8'
neon.timeline_id='2414a61ffc94e428f14b5758fe308e13'
`;

    test("feature on and a TLS config: ssl lines after the ids", () => {
      const doc = minimalSpec();
      doc.features = ["tls_experimental"];
      const inputs = inputsFor(doc, { tls });
      expect(tlsEnabled(inputs)).toBe(true);
      expect(renderPostgresConf(inputs)).toBe(
        BEFORE_TLS +
          `ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
` +
          AFTER_IDS,
      );
    });

    test("feature without config, or config without feature: nothing", () => {
      const on = minimalSpec();
      on.features = ["tls_experimental"];
      const noConfig = inputsFor(on);
      expect(tlsEnabled(noConfig)).toBe(false);
      expect(renderPostgresConf(noConfig)).toBe(BEFORE_TLS + AFTER_IDS);

      const off = minimalSpec();
      off.features = ["activity_monitor_experimental"];
      const noFeature = inputsFor(off, { tls });
      expect(tlsEnabled(noFeature)).toBe(false);
      expect(renderPostgresConf(noFeature)).toBe(BEFORE_TLS + AFTER_IDS);
    });
  });

  describe("lakebase", () => {
    test("port and the Databricks block (an empty line before its end marker)", () => {
      const doc = minimalSpec();
      doc.databricks_settings = {
        pg_compute_tls_settings: {
          cert_file: "/tls/c.crt",
          key_file: "/tls/c.key",
          ca_file: "/tls/ca.crt",
        },
        databricks_pg_hba: "/db/pg_hba.conf",
        databricks_pg_ident: "/db/pg_ident.conf",
        databricks_workspace_host: "ws.example.com",
      };
      expect(render(doc, { lakebase: { connstrPort: 5433 } })).toBe(
        MINIMAL_HEAD +
          ROLE_LINE +
          `neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
port = 5433
# Databricks settings start
ssl_ca_file = '/tls/ca.crt'
databricks.workspace_url = 'ws.example.com'
databricks.enable_databricks_identity_login = true
databricks.enable_sql_restrictions = true

# Databricks settings end
include_if_exists = 'compute_ctl_temp_override.conf'
`,
      );
    });

    test("without databricks_settings only the markers; without a port an error", () => {
      expect(render(minimalSpec(), { lakebase: { connstrPort: 5433 } })).toBe(
        MINIMAL_HEAD +
          ROLE_LINE +
          `neon.extension_server_port=3081
neon.disable_logical_replication_subscribers=false
port = 5433
# Databricks settings start
# Databricks settings end
include_if_exists = 'compute_ctl_temp_override.conf'
`,
      );
      expect(errorMessage(() => render(minimalSpec(), { lakebase: { connstrPort: null } }))).toBe(
        "lakebase mode: port must be present in connstr",
      );
    });
  });
});

describe("renderPostgresConf errors", () => {
  test("a missing shard key names the shard index", () => {
    const doc = minimalSpec();
    doc.pageserver_connection_info = {
      shard_count: 2,
      stripe_size: 32768,
      shards: { "0002": { pageservers: [{ libpq_url: "postgres://ps1:6400" }] } },
    };
    expect(errorMessage(() => render(doc))).toBe(
      "shard 0102 missing from pageserver_connection_info shard map",
    );
  });

  test("shard keys are matched in lower case (decode normalises input keys)", () => {
    const doc = minimalSpec();
    const ps = (n: number) => ({ pageservers: [{ libpq_url: `postgres://ps${n}:6400` }] });
    doc.pageserver_connection_info = {
      shard_count: 11,
      stripe_size: 8,
      shards: Object.fromEntries(
        Array.from({ length: 11 }, (_, i) => [`${i.toString(16).padStart(2, "0")}0B`, ps(i)]),
      ),
    };
    expect(render(doc)).toContain(
      `neon.pageserver_connstring='${Array.from({ length: 11 }, (_, i) => `postgres://ps${i}:6400`).join(",")}'\n`,
    );
    delete doc.pageserver_connection_info.shards["0a0B"];
    expect(errorMessage(() => render(doc))).toBe(
      "shard 0a0b missing from pageserver_connection_info shard map",
    );
  });

  test("a shard with an empty pageserver list is an error, not a crash", () => {
    const doc = minimalSpec();
    doc.pageserver_connection_info = { shard_count: 0, shards: { "0000": { pageservers: [] } } };
    expect(errorMessage(() => render(doc))).toBe(
      "shard 0000 has no pageservers in pageserver_connection_info",
    );
  });
});

describe("writePostgresConf and readOvercommitMemory", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "conf-test-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("creates, then truncates and rewrites postgresql.conf", async () => {
    const path = join(dir, "postgresql.conf");
    writeFileSync(path, "x".repeat(10_000));
    await writePostgresConf(dir, inputsFor(primarySpec()));
    expect(readFileSync(path, "utf8")).toBe(PRIMARY);
  });

  test("reads /proc on Linux, null elsewhere", async () => {
    const v = await readOvercommitMemory();
    if (process.platform === "linux") expect(v).toMatch(/^[012]\n$/);
    else expect(v).toBeNull();
  });
});
