// The rendered rsyslog files against the real rsyslogd: both pass its config check, and both
// deliver: a syslog message from `postgres` and a pgaudit log line reach a TCP listener.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFile, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditRsyslogConfig, postgresLogsConfig } from "../../../src/sidecars/rsyslog.ts";
import { cleanup } from "../../support/proc.ts";
import {
  checkConfig,
  mainConfig,
  rsyslogDir,
  rsyslogdUnavailable,
  startCollector,
  startRsyslogd,
} from "../../support/rsyslog.ts";

setDefaultTimeout(60_000);
afterAll(cleanup);

async function layout() {
  const dir = await mkdtemp(join(tmpdir(), "rsyslog-"));
  await mkdir(rsyslogDir(dir));
  await mkdir(join(dir, "log"));
  const socket = join(dir, "log.sock");
  const conf = join(dir, "rsyslog.conf");
  await writeFile(conf, mainConfig({ socket, includeDir: rsyslogDir(dir) }));
  return { dir, socket, conf, logDir: join(dir, "log") };
}

const unavailable = rsyslogdUnavailable();
if (unavailable) console.warn(`skipping the real-rsyslogd tests: ${unavailable}`);

describe.skipIf(unavailable !== null)("rsyslogd -N1", () => {
  for (const tls of [false, true]) {
    test(`both files pass the config check (audit TLS ${tls})`, async () => {
      const l = await layout();
      await writeFile(
        join(rsyslogDir(l.dir), "postgres_logs.conf"),
        postgresLogsConfig("127.0.0.1:1514"),
      );
      await writeFile(
        join(rsyslogDir(l.dir), "compute_audit_rsyslog.conf"),
        auditRsyslogConfig({
          logDirectory: l.logDir,
          // Quotes and backslashes are escaped into the RainerScript strings.
          endpointId: 'ep-"1"',
          projectId: "p\\1",
          address: { host: "collector.example", port: 5555, tls },
        }),
      );
      const r = await checkConfig(l.conf);
      expect(r.output).not.toContain("error");
      expect(r.code).toBe(0);
    });
  }

  test("the check does fail on a broken file", async () => {
    const l = await layout();
    await writeFile(join(rsyslogDir(l.dir), "broken.conf"), 'action(type="omfwd" target=\n');
    expect((await checkConfig(l.conf)).code).not.toBe(0);
  });
});

describe.skipIf(unavailable !== null)("delivery", () => {
  test("a postgres syslog message and a pgaudit log line reach their collectors", async () => {
    const l = await layout();
    const pgLogs = startCollector();
    const audit = startCollector();
    await writeFile(
      join(rsyslogDir(l.dir), "postgres_logs.conf"),
      postgresLogsConfig(`127.0.0.1:${pgLogs.port}`),
    );
    await writeFile(
      join(rsyslogDir(l.dir), "compute_audit_rsyslog.conf"),
      auditRsyslogConfig({
        logDirectory: l.logDir,
        endpointId: "ep-e2e",
        projectId: "proj-e2e",
        address: { host: "127.0.0.1", port: audit.port, tls: false },
      }),
    );
    const auditFile = join(l.logDir, "audit-1.log");
    await writeFile(auditFile, "");
    const rsyslogd = startRsyslogd(l.conf, join(l.dir, "rsyslogd.pid"));
    await Bun.sleep(1000);

    const logger = Bun.spawn(["logger", "-u", l.socket, "-t", "postgres", "hello from postgres"]);
    expect(await logger.exited).toBe(0);
    const line = await pgLogs.waitFor(
      (x) => x.includes("hello from postgres"),
      "the postgres log line",
    );
    // RFC 5424 (RSYSLOG_SyslogProtocol23Format): <PRI>1 TIMESTAMP HOST APP ...
    expect(line).toMatch(/^<\d+>1 \S+ \S+ postgres /);

    await appendFile(
      auditFile,
      "2026-12-07 05:00:00.123 GMT,AUDIT: SESSION,1,1,READ,SELECT,,,select 1\n",
    );
    await appendFile(
      auditFile,
      "2026-12-07 05:00:01.456 GMT,AUDIT: SESSION,2,1,READ,SELECT,,,select 2\n",
    );
    const a = await audit.waitFor((x) => x.includes("select 1"), "the first audit line");
    expect(a).toMatch(/^<174>1 \S+ \S+ - - - - \{/);
    const json = JSON.parse(a.slice(a.indexOf("{")));
    expect(json).toEqual({
      endpoint_id: "ep-e2e",
      project_id: "proj-e2e",
      msg: "2026-12-07 05:00:00.123 GMT,AUDIT: SESSION,1,1,READ,SELECT,,,select 1",
    });
    rsyslogd.kill("SIGTERM");
    await rsyslogd.exited;
    pgLogs.stop();
    audit.stop();
  });
});
