import { describe, expect, test } from "bun:test";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  auditRsyslogConfig,
  configurePostgresLogsExport,
  parseAuditSyslogAddress,
  postgresLogsConfig,
  rsyslogString,
} from "../../../src/sidecars/rsyslog.ts";

describe("the audit collector address", () => {
  test("valid forms, and TLS winning over plain", () => {
    expect(parseAuditSyslogAddress("collector.host.tld:5555", "")).toEqual({
      host: "collector.host.tld",
      port: 5555,
      tls: false,
    });
    expect(parseAuditSyslogAddress("10.0.0.1:5555", "")).toEqual({
      host: "10.0.0.1",
      port: 5555,
      tls: false,
    });
    expect(parseAuditSyslogAddress("[7e60:82ed:cb2e:d617:f904:f395:aaca:e252]:5555", "")).toEqual({
      host: "7e60:82ed:cb2e:d617:f904:f395:aaca:e252",
      port: 5555,
      tls: false,
    });
    expect(parseAuditSyslogAddress("", "tls.host.tld:5556")).toEqual({
      host: "tls.host.tld",
      port: 5556,
      tls: true,
    });
    expect(parseAuditSyslogAddress("plaintext.host.tld:5555", "tls.host.tld:5556")).toEqual({
      host: "tls.host.tld",
      port: 5556,
      tls: true,
    });
  });

  test("invalid forms give one line naming the value", () => {
    for (const bad of [
      "collector.host.tld",
      ":5555",
      "collector.host.tld:90001",
      "-collector.host.tld:5555",
      "collector.host.tld:::5555",
      "user@collector:5555",
      "collector:5555/path",
      "collector:5555?",
      "collector:80",
    ]) {
      expect(() => parseAuditSyslogAddress(bad, "")).toThrow(
        `invalid AUDIT_LOGGING_ENDPOINT ${JSON.stringify(bad)}`,
      );
    }
    expect(() => parseAuditSyslogAddress("x", "-bad:1")).toThrow(
      'invalid AUDIT_LOGGING_TLS_ENDPOINT "-bad:1": invalid host, expected host:port',
    );
  });
});

describe("rendered files", () => {
  test("the Postgres log export file", () => {
    expect(postgresLogsConfig(null)).toBe("");
    // A quote cannot end the string and add an attribute: it is escaped.
    expect(postgresLogsConfig('c" port="1:514')).toContain('target="c\\" port=\\"1" port="514"');
    expect(() => postgresLogsConfig("invalid")).toThrow(
      "Invalid host format for Postgres logs export",
    );
    // Split at the first colon; the port is not checked.
    expect(postgresLogsConfig("collector.cvc.local:514:x")).toBe(
      [
        "# Program name comes from postgres' syslog_facility configuration: https://www.postgresql.org/docs/current/runtime-config-logging.html#GUC-SYSLOG-IDENT",
        "# Default value is 'postgres'.",
        "if $programname == 'postgres' then {",
        "    # Forward Postgres logs to telemetry otel collector",
        '    action(type="omfwd" target="collector.cvc.local" port="514:x" protocol="tcp"',
        '           template="RSYSLOG_SyslogProtocol23Format"',
        '           action.resumeRetryCount="3"',
        '           queue.type="linkedList" queue.size="1000")',
        "    stop",
        "}",
        "",
      ].join("\n"),
    );
  });

  test("the audit file, plain and TLS", () => {
    const plain = auditRsyslogConfig({
      logDirectory: "/tmp/log",
      endpointId: "ep-test-endpoint-id",
      projectId: "test-project-id",
      address: { host: "collector.host.tld", port: 5555, tls: false },
    });
    expect(plain).toContain('input(type="imfile" File="/tmp/log/*.log"\n');
    expect(plain).toContain('set $.remote_syslog_tls = "false";');
    expect(plain).toContain('set $.json_log!endpoint_id = "ep-test-endpoint-id";');
    expect(plain).toContain('set $.json_log!project_id = "test-project-id";');
    expect(plain).toContain('target="collector.host.tld" port="5555" protocol="tcp"');
    expect(plain).toContain('StreamDriverPermittedPeers="collector.host.tld"');
    expect(plain).toContain(
      'startmsg.regex="^[[:digit:]]{4}-[[:digit:]]{2}-[[:digit:]]{2} [[:digit:]]{2}:[[:digit:]]{2}:[[:digit:]]{2}.[[:digit:]]{3} GMT,")',
    );
    expect(plain).toContain("if ( $syslogtag == 'pgaudit_log' ) then {\n");
    const tls = auditRsyslogConfig({
      logDirectory: "/tmp/log",
      endpointId: "",
      projectId: "",
      address: { host: "tls.host.tld", port: 5556, tls: true },
    });
    expect(tls).toContain('set $.remote_syslog_tls = "true";');
    expect(tls).toContain('set $.json_log!endpoint_id = "";');
    const quoted = auditRsyslogConfig({
      logDirectory: "/tmp/log",
      endpointId: 'ep"1',
      projectId: "p\\1",
      address: { host: "h", port: 1, tls: false },
    });
    expect(quoted).toContain('set $.json_log!endpoint_id = "ep\\"1";');
    expect(quoted).toContain('set $.json_log!project_id = "p\\\\1";');
  });
});

describe("configurePostgresLogsExport", () => {
  test("writes and restarts only on a change; an empty config leaves the old file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rsyslog-"));
    const path = join(dir, "postgres_logs.conf");
    let restarts = 0;
    const restart = async () => {
      restarts++;
    };
    expect(await configurePostgresLogsExport(null, path, restart)).toBe(false);
    expect(await Bun.file(path).exists()).toBe(false);
    expect(await configurePostgresLogsExport("c:514", path, restart)).toBe(true);
    expect(restarts).toBe(1);
    expect(await configurePostgresLogsExport("c:514", path, restart)).toBe(false);
    expect(restarts).toBe(1);
    expect(await configurePostgresLogsExport("d:514", path, restart)).toBe(true);
    expect(restarts).toBe(2);
    expect(await readFile(path, "utf8")).toContain('target="d"');
    expect(await configurePostgresLogsExport(null, path, restart)).toBe(false);
    expect(await readFile(path, "utf8")).toContain('target="d"');
    await expect(configurePostgresLogsExport("nocolon", path, restart)).rejects.toThrow(
      "Invalid host format for Postgres logs export",
    );
    await writeFile(path, "");
    expect(restarts).toBe(2);
  });
});

test("ids are written as RainerScript strings: backslashes and double quotes escaped", () => {
  expect(rsyslogString("a\"b\\c'd")).toBe("a\\\"b\\\\c'd");
  const conf = auditRsyslogConfig({
    logDirectory: "/var/log/pgaudit",
    endpointId: 'ep-"x"',
    projectId: "p\\1",
    address: { host: "collector", port: 5555, tls: false },
  });
  expect(conf).toContain('set $.json_log!endpoint_id = "ep-\\"x\\"";\n');
  expect(conf).toContain('set $.json_log!project_id = "p\\\\1";\n');
});
