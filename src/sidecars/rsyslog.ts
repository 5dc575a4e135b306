// rsyslog ships two kinds of logs out of the compute: Postgres's own log (logs_export_host, via
// syslog) and the compliance audit log (pgaudit's files, to the collector named by the
// environment). compute_ctl renders one file per kind into /etc/rsyslog.d/ and restarts rsyslogd,
// which has no reload: `pkill rsyslogd`, then wait for init to respawn it (`pgrep rsyslogd`). Both
// commands are found on PATH. Paths inside the rendered files are the image's, as written here.
import { readFile, writeFile } from "node:fs/promises";
import { log } from "../log.ts";
import { hostPath } from "../util/host.ts";

export const POSTGRES_LOGS_CONF = "/etc/rsyslog.d/postgres_logs.conf";
export const AUDIT_CONF = "/etc/rsyslog.d/compute_audit_rsyslog.conf";

/** `v` for inside a RainerScript "..." string: backslashes and quotes escaped. */
export function rsyslogString(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll('"', '\\"');
}

/** The Postgres log export file for `host` ("target:port", split at the first colon); "" for none. */
export function postgresLogsConfig(host: string | null): string {
  if (host === null) return "";
  const colon = host.indexOf(":");
  if (colon < 0) throw new Error("Invalid host format for Postgres logs export");
  const target = rsyslogString(host.slice(0, colon));
  const port = rsyslogString(host.slice(colon + 1));
  return `# Program name comes from postgres' syslog_facility configuration: https://www.postgresql.org/docs/current/runtime-config-logging.html#GUC-SYSLOG-IDENT
# Default value is 'postgres'.
if $programname == 'postgres' then {
    # Forward Postgres logs to telemetry otel collector
    action(type="omfwd" target="${target}" port="${port}" protocol="tcp"
           template="RSYSLOG_SyslogProtocol23Format"
           action.resumeRetryCount="3"
           queue.type="linkedList" queue.size="1000")
    stop
}
`;
}

export interface AuditAddress {
  host: string;
  port: number;
  tls: boolean;
}

/** A DNS name as the reference's hostname check accepts it. */
function validHostname(h: string): boolean {
  if (h.length === 0 || h.length > 253) return false;
  return h
    .split(".")
    .every(
      (l) =>
        l.length > 0 &&
        l.length <= 63 &&
        /^[A-Za-z0-9-]+$/.test(l) &&
        !l.startsWith("-") &&
        !l.endsWith("-"),
    );
}

/**
 * The audit collector: the TLS endpoint when set, else the plain one, each `host:port` (host a DNS
 * name, IPv4 or bracketed IPv6; an explicit port; nothing else). Errors name the value.
 */
export function parseAuditSyslogAddress(plain: string, tlsEndpoint: string): AuditAddress {
  const tls = tlsEndpoint !== "";
  const value = tls ? tlsEndpoint : plain;
  const which = tls ? "AUDIT_LOGGING_TLS_ENDPOINT" : "AUDIT_LOGGING_ENDPOINT";
  const bad = (why: string) =>
    new Error(`invalid ${which} ${JSON.stringify(value)}: ${why}, expected host:port`);
  let url: URL;
  try {
    url = new URL(`http://${value}`);
  } catch {
    throw bad("not an address");
  }
  if (
    url.pathname !== "/" ||
    url.search !== "" ||
    url.hash !== "" ||
    url.username !== "" ||
    url.password !== "" ||
    // The URL parser drops a trailing "?" or "#" with nothing after it: refuse those too.
    /[?#/@]/.test(value.replace(/^\[[^\]]*\]/, ""))
  ) {
    throw bad("not a plain address");
  }
  let host = url.hostname;
  if (host.startsWith("[")) host = host.slice(1, -1);
  else if (!/^[0-9.]+$/.test(host) && !validHostname(host)) throw bad("invalid host");
  if (url.port === "") throw bad("no port (or the scheme's default port 80)");
  return { host, port: Number(url.port), tls };
}

export interface AuditConfigInputs {
  logDirectory: string;
  endpointId: string;
  projectId: string;
  address: AuditAddress;
}

/** The compliance audit file: pgaudit's log files to the collector, as RFC 5424 with JSON. */
export function auditRsyslogConfig(i: AuditConfigInputs): string {
  const { port } = i.address;
  const host = rsyslogString(i.address.host);
  const tls = i.address.tls ? "true" : "false";
  return `# Load imfile module to read log files
module(load="imfile")

# Input configuration for log files in the specified directory
# The messages can be multiline. The start of the message is a timestamp
# in "%Y-%m-%d %H:%M:%S.%3N GMT" (so timezone hardcoded).
# Replace log_directory with the directory containing the log files
input(type="imfile" File="${rsyslogString(i.logDirectory)}/*.log"
  Tag="pgaudit_log" Severity="info" Facility="local5"
  startmsg.regex="^[[:digit:]]{4}-[[:digit:]]{2}-[[:digit:]]{2} [[:digit:]]{2}:[[:digit:]]{2}:[[:digit:]]{2}.[[:digit:]]{3} GMT,")

# the directory to store rsyslog state files
global(
  workDirectory="/var/log/rsyslog"
  DefaultNetstreamDriverCAFile="/etc/ssl/certs/ca-certificates.crt"
)

# Whether the remote syslog receiver uses tls
set $.remote_syslog_tls = "${tls}";

# Construct json, endpoint_id and project_id as additional metadata
set $.json_log!endpoint_id = "${rsyslogString(i.endpointId)}";
set $.json_log!project_id = "${rsyslogString(i.projectId)}";
set $.json_log!msg = $msg;

# Template suitable for rfc5424 syslog format
template(name="PgAuditLog" type="string"
    string="<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% - - - - %$.json_log%")

# Forward to remote syslog receiver (over TLS)
if ( $syslogtag == 'pgaudit_log' ) then {
  if ( $.remote_syslog_tls == 'true' ) then {
    action(type="omfwd" target="${host}" port="${port}" protocol="tcp"
      template="PgAuditLog"
      queue.type="linkedList"
      queue.size="1000"
      action.ResumeRetryCount="10"
      StreamDriver="gtls"
      StreamDriverMode="1"
      StreamDriverAuthMode="x509/name"
      StreamDriverPermittedPeers="${host}"
      StreamDriver.CheckExtendedKeyPurpose="on"
      StreamDriver.PermitExpiredCerts="off"
    )
    stop
  } else {
    action(type="omfwd" target="${host}" port="${port}" protocol="tcp"
      template="PgAuditLog"
      queue.type="linkedList"
      queue.size="1000"
      action.ResumeRetryCount="10"
    )
    stop
  }
}
`;
}

async function run(cmd: string[]): Promise<string> {
  let p: ReturnType<typeof Bun.spawn>;
  try {
    p = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  } catch (err) {
    throw new Error(`could not run ${cmd[0]}`, { cause: err });
  }
  const out = await new Response(p.stdout as ReadableStream).text();
  await p.exited;
  return out;
}

export interface RestartOptions {
  /** How long to wait for rsyslogd to be back (5 s); the poll starts at 2 ms and doubles. */
  maxWaitMs?: number;
}

/** Kills rsyslogd (all of them, as `pkill rsyslogd`) and waits until one runs again. */
export async function restartRsyslog(opts: RestartOptions = {}): Promise<void> {
  const maxWaitMs = opts.maxWaitMs ?? 5000;
  await run(["pkill", "rsyslogd"]);
  const t0 = performance.now();
  let sleepMs = 2;
  for (let attempt = 1; ; attempt++) {
    const pid = (await run(["pgrep", "rsyslogd"])).trim();
    if (pid !== "") return;
    const elapsed = performance.now() - t0;
    if (elapsed >= maxWaitMs) {
      throw new Error(
        `rsyslogd is not running after waiting for ${Math.floor(elapsed / 1000)} seconds and ${attempt} attempts`,
      );
    }
    log.info(`rsyslogd is not running, attempt ${attempt}. Sleeping for ${sleepMs} ms`);
    await Bun.sleep(sleepMs);
    sleepMs *= 2;
  }
}

/**
 * Postgres log export: writes the file and restarts rsyslog when its content changes. An
 * empty new content leaves the old file in place (Postgres stops sending to syslog anyway).
 * Returns whether rsyslog was restarted.
 */
export async function configurePostgresLogsExport(
  host: string | null,
  path = hostPath(POSTGRES_LOGS_CONF),
  restart: () => Promise<void> = restartRsyslog,
): Promise<boolean> {
  const next = postgresLogsConfig(host);
  let current = "";
  try {
    current = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new Error(`could not read ${path}`, { cause: err });
    }
  }
  if (next === current) {
    log.info("postgres logs rsyslog configuration is up-to-date");
    return false;
  }
  if (next === "") return false;
  log.info(`configuring rsyslog for postgres logs export to ${host}`);
  try {
    await writeFile(path, next);
  } catch (err) {
    throw new Error(`could not write ${path}`, { cause: err });
  }
  await restart();
  return true;
}

/** The compliance audit export: writes the file and restarts rsyslog. */
export async function configureAuditRsyslog(
  inputs: AuditConfigInputs,
  path = hostPath(AUDIT_CONF),
  restart: () => Promise<void> = restartRsyslog,
): Promise<void> {
  const text = auditRsyslogConfig(inputs);
  try {
    await writeFile(path, text);
  } catch (err) {
    throw new Error(`could not write ${path}`, { cause: err });
  }
  log.info(`rsyslog configuration file ${path} written, restarting rsyslogd`);
  await restart();
}
