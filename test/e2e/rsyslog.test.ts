// Log and audit export through the compiled binary, on a fake host whose pkill and pgrep are
// shims that record their arguments: the rendered files under the host root, rsyslog restarted
// only on a change, the start failures as one line in /status, and the pgaudit log clean-up with
// its metric (real pgaudit and pgauditlogtofile in Postgres 15).
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { configure } from "../support/configure.ts";
import { makeFakeHost } from "../support/host.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { setting, startWith } from "../support/sidecars.ts";
import { psql, start, statusOf, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

async function recordingHost() {
  const host = await makeFakeHost();
  const calls = host.path("/calls.log");
  await host.shim("pkill", `echo "pkill $*" >> ${calls}\n`);
  await host.shim("pgrep", `echo "pgrep $*" >> ${calls}\necho 4242\n`);
  const read = async () =>
    (await readFile(calls, "utf8").catch(() => "")).split("\n").filter((l) => l !== "");
  return { host, calls: read };
}

describe("Postgres log export", () => {
  test("written under the host root, rsyslog restarted once per change, refused without a colon", async () => {
    const { host, calls } = await recordingHost();
    const s = await start({ spec: { logs_export_host: "127.0.0.1:1514" }, env: host.env });
    await waitStatus(s, "running");
    const file = host.path("/etc/rsyslog.d/postgres_logs.conf");
    expect(await readFile(file, "utf8")).toContain('target="127.0.0.1" port="1514" protocol="tcp"');
    expect(await calls()).toEqual(["pkill rsyslogd", "pgrep rsyslogd"]);
    const conf = await readFile(join(s.stack.pgdata, "postgresql.conf"), "utf8");
    expect(conf).toContain("log_destination='stderr,syslog'");

    // The same host: nothing to do. Another one: rewritten and restarted.
    expect((await configure(s, s.stack.spec)).code).toBe(200);
    expect(await calls()).toHaveLength(2);
    const other = { ...s.stack.spec, logs_export_host: "collector:2514" };
    expect((await configure(s, other)).code).toBe(200);
    expect(await readFile(file, "utf8")).toContain('target="collector" port="2514"');
    expect(await calls()).toHaveLength(4);
    // No export any more: the file stays, rsyslog is left alone.
    const none = { ...s.stack.spec, logs_export_host: null };
    expect((await configure(s, none)).code).toBe(200);
    expect(await readFile(file, "utf8")).toContain('target="collector"');
    expect(await calls()).toHaveLength(4);

    const bad = await configure(s, { ...s.stack.spec, logs_export_host: "nocolon" });
    expect(bad.code).toBe(500);
    expect(bad.body.error).toContain("Invalid host format for Postgres logs export");
    // A failed reconfigure leaves Postgres running (as the reference): end it with a signal.
    expect((await statusOf(s)).status).toBe("failed");
    s.compute.proc.kill("SIGTERM");
    await s.compute.exited;
    await s.stack.stop();
  });

  test("a value without a colon fails the start with the reference's text, in one line", async () => {
    const { host, calls } = await recordingHost();
    const s = await start({ spec: { logs_export_host: "collector" }, env: host.env });
    const st = await waitStatus(s, "failed");
    expect(st.error).toBe("Invalid host format for Postgres logs export");
    expect(await calls()).toEqual([]);
    expect(await s.compute.exited).toBe(1);
    const lines = s.compute.stderr.text
      .split("\n")
      .filter((l) => l.includes("Invalid host format"));
    expect(lines).toHaveLength(1);
    expect(s.compute.stderr.text).not.toMatch(/^\s+at /m);
    await s.stack.stop();
  });

  test("pgrep never finding rsyslogd fails the start once 5 s have passed (the backoff may overshoot to ~8 s)", async () => {
    const host = await makeFakeHost();
    await host.shim("pkill", "exit 0\n");
    await host.shim("pgrep", "exit 1\n");
    const s = await start({ spec: { logs_export_host: "c:1" }, env: host.env });
    const st = await waitStatus(s, "failed", 30_000);
    expect(st.error).toMatch(
      /^rsyslogd is not running after waiting for [5-9] seconds and 1[2-4] attempts$/,
    );
    await s.compute.exited;
    await s.stack.stop();
  });
});

const AUDIT_LIBS = setting("shared_preload_libraries", "pgaudit,pgauditlogtofile");

describe("compliance audit export", () => {
  test("no collector configured fails the start", async () => {
    const { host, calls } = await recordingHost();
    const s = await start({ spec: { audit_log_level: "Hipaa" }, env: host.env });
    const st = await waitStatus(s, "failed");
    expect(st.error).toBe("AUDIT_LOGGING_ENDPOINT and AUDIT_LOGGING_TLS_ENDPOINT are both empty");
    expect(await calls()).toEqual([]);
    await s.compute.exited;
    await s.stack.stop();
  });

  test("an invalid collector address fails the start with one line naming it (no panic)", async () => {
    const { host } = await recordingHost();
    const s = await start({
      spec: { audit_log_level: "Full" },
      env: { ...host.env, AUDIT_LOGGING_ENDPOINT: "collector.example" },
    });
    const st = await waitStatus(s, "failed");
    expect(st.error).toBe(
      'invalid AUDIT_LOGGING_ENDPOINT "collector.example": no port (or the scheme\'s default port 80), expected host:port',
    );
    expect(await Bun.file(host.path("/etc/rsyslog.d/compute_audit_rsyslog.conf")).exists()).toBe(
      false,
    );
    await s.compute.exited;
    await s.stack.stop();
  });

  test("Hipaa: the audit file, the restart, and the clean-up of old pgaudit logs with its metric", async () => {
    const { host, calls } = await recordingHost();
    const s = await startWith({
      spec: { audit_log_level: "Hipaa", project_id: "proj-1" },
      mutateSpec: (spec) => spec.cluster.settings.push(AUDIT_LIBS),
      env: {
        ...host.env,
        AUDIT_LOGGING_ENDPOINT: "plain.example:5555",
        AUDIT_LOGGING_TLS_ENDPOINT: "tls.example:6514",
        COMPUTE_CTL_TESTING_AUDIT_GC_MS: "200",
      },
    });
    await waitStatus(s, "running");
    const text = await readFile(host.path("/etc/rsyslog.d/compute_audit_rsyslog.conf"), "utf8");
    expect(text).toContain(`input(type="imfile" File="${s.stack.pgdata}/log/*.log"`);
    expect(text).toContain('set $.remote_syslog_tls = "true";');
    expect(text).toContain('target="tls.example" port="6514"');
    expect(text).toContain('set $.json_log!endpoint_id = "ep-local";');
    expect(text).toContain('set $.json_log!project_id = "proj-1";');
    expect(await calls()).toEqual(["pkill rsyslogd", "pgrep rsyslogd"]);

    // pgauditlogtofile writes its audit file into <pgdata>/log; an old one is deleted.
    const logDir = join(s.stack.pgdata, "log");
    await psql(s, "create table audited (x int); select * from audited");
    await waitFor(
      async () => (await Array.fromAsync(new Bun.Glob("audit*.log").scan(logDir))).length > 0,
      {
        what: "pgauditlogtofile's audit log",
        timeoutMs: 15_000,
      },
    );
    const old = join(logDir, "audit-old.log");
    const fresh = join(logDir, "audit-fresh.log");
    await writeFile(old, "x".repeat(1000));
    await writeFile(fresh, "y".repeat(1000));
    const past = new Date(Date.now() - 16 * 60_000);
    await utimes(old, past, past);
    await waitFor(async () => !(await Bun.file(old).exists()), {
      what: "the old audit log deleted",
      timeoutMs: 10_000,
    });
    expect(await Bun.file(fresh).exists()).toBe(true);
    const size = await waitFor(
      async () => {
        const m = await (await s.compute.get("/metrics")).text();
        const v = /^compute_audit_log_dir_size (\d+)$/m.exec(m);
        return v && Number(v[1]) >= 1000 ? Number(v[1]) : undefined;
      },
      { what: "compute_audit_log_dir_size", timeoutMs: 10_000 },
    );
    expect(size).toBeGreaterThanOrEqual(1000);
    expect((await terminate(s, "immediate")).code).toBe(200);
    await s.compute.exited;
    await s.stack.stop();
  });
});
