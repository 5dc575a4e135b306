// The compute's neighbours as the lifecycle sees them: one object per compute_ctl run that knows
// how this host reaches pgbouncer and local_proxy, and runs their background tasks one after
// another so two reconfigures never interleave their writes.

import { join } from "node:path";
import { AUDIT_EXPORT_LEVELS } from "../api/sidecar-values.ts";
import type { ComputeSpec, TlsConfig } from "../api/spec.ts";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { startAuditGc } from "./audit-gc.ts";
import { configureLocalProxy, type LocalProxyPaths, localProxyPaths } from "./local-proxy.ts";
import { type PgbouncerTarget, pgbouncerTarget, tunePgbouncer } from "./pgbouncer.ts";
import {
  configureAuditRsyslog,
  configurePostgresLogsExport,
  parseAuditSyslogAddress,
} from "./rsyslog.ts";
import { waitForCertDigest, watchCert } from "./tls.ts";

export interface SidecarsOptions {
  /** compute_ctl_config.tls; the sidecars use it only with the `tls_experimental` feature. */
  tls: TlsConfig | null;
  autoscaling: boolean;
  pgbouncerPassword: string | null;
  pgbouncerPort: number;
  /** AUDIT_LOGGING_ENDPOINT and AUDIT_LOGGING_TLS_ENDPOINT ("" when unset). */
  auditEndpoint?: string;
  auditTlsEndpoint?: string;
  /** The pgaudit log clean-up period (60 s) and where the log directory's size goes. */
  auditGcMs?: number;
  setAuditLogDirSize?: (bytes: number) => void;
  /** How often the TLS certificate is re-hashed (60 s). */
  tlsPollMs?: number;
}

export class Sidecars {
  readonly pgbouncer: PgbouncerTarget;
  readonly localProxy: LocalProxyPaths = localProxyPaths();
  readonly #abort = new AbortController();
  #pgbouncerQueue: Promise<void> = Promise.resolve();
  #localProxyQueue: Promise<unknown> = Promise.resolve();
  #auditGc: { stop(): void } | null = null;
  #certWatch: { stop(): void } | null = null;
  #onCertChange: () => void = () => {};

  constructor(private readonly opts: SidecarsOptions) {
    this.pgbouncer = pgbouncerTarget({
      autoscaling: opts.autoscaling,
      password: opts.pgbouncerPassword,
      port: opts.pgbouncerPort,
    });
  }

  /** The TLS files the spec's consumers get: only with the `tls_experimental` feature. */
  tlsFor(spec: ComputeSpec): TlsConfig | null {
    return spec.features.includes("tls_experimental") ? this.opts.tls : null;
  }

  /**
   * Tunes pgbouncer in the background when the spec has pgbouncer_settings; never blocks the
   * caller, and a failure is only logged. Returns the task (tests and the lifecycle may wait).
   */
  tunePgbouncerInBackground(spec: ComputeSpec): Promise<void> {
    const settings = spec.pgbouncer_settings;
    if (!settings) return Promise.resolve();
    log.info("tuning pgbouncer");
    const tls = this.tlsFor(spec);
    const task = this.#pgbouncerQueue.then(() =>
      tunePgbouncer({ settings, tls, target: this.pgbouncer, signal: this.#abort.signal }).catch(
        (err) => {
          if (!this.#abort.signal.aborted) {
            log.error(`error while tuning pgbouncer: ${formatOneLine(err)}`);
          }
        },
      ),
    );
    this.#pgbouncerQueue = task;
    return task;
  }

  /**
   * Writes local_proxy's config and signals it, when the spec has local_proxy_config; resolves
   * when done and throws on failure. Calls run one after another.
   */
  configureLocalProxy(spec: ComputeSpec): Promise<void> {
    const lp = spec.local_proxy_config;
    if (!lp) return Promise.resolve();
    log.info("configuring local_proxy");
    const tls = this.tlsFor(spec);
    const task = this.#localProxyQueue.then(
      () => configureLocalProxy(lp, tls, this.localProxy),
      () => configureLocalProxy(lp, tls, this.localProxy),
    );
    this.#localProxyQueue = task.catch(() => {});
    return task.then(() => {});
  }

  /** configureLocalProxy in the background: never blocks, a failure is only logged. */
  configureLocalProxyInBackground(spec: ComputeSpec): Promise<void> {
    return this.configureLocalProxy(spec).catch((err) => {
      log.error(`error while configuring local_proxy: ${formatOneLine(err)}`);
    });
  }

  /**
   * The compliance audit export, at start only: with audit_log_level Hipaa, Extended or Full,
   * the rsyslog file for the collector the environment names, rsyslog restarted, and the pgaudit
   * log clean-up started. Throws when the collector is missing or invalid or rsyslog fails.
   */
  async configureAuditExport(spec: ComputeSpec, pgdata: string): Promise<void> {
    if (!AUDIT_EXPORT_LEVELS.includes(spec.audit_log_level)) return;
    const plain = this.opts.auditEndpoint ?? "";
    const tls = this.opts.auditTlsEndpoint ?? "";
    if (plain === "" && tls === "") {
      throw new Error("AUDIT_LOGGING_ENDPOINT and AUDIT_LOGGING_TLS_ENDPOINT are both empty");
    }
    const logDirectory = join(pgdata, "log");
    await configureAuditRsyslog({
      logDirectory,
      endpointId: spec.endpoint_id ?? "",
      projectId: spec.project_id ?? "",
      address: parseAuditSyslogAddress(plain, tls),
    });
    this.#auditGc ??= startAuditGc({
      logDirectory,
      intervalMs: this.opts.auditGcMs ?? 60_000,
      setSize: this.opts.setAuditLogDirSize ?? (() => {}),
    });
  }

  /** The Postgres log export (logs_export_host), at start and on every reconfigure. */
  async configurePostgresLogsExport(spec: ComputeSpec): Promise<void> {
    await configurePostgresLogsExport(spec.logs_export_host);
  }

  /** Aborted when compute_ctl shuts down: waits (for the TLS files, say) end with it. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** What to do when the TLS certificate is renewed (the lifecycle reconfigures). */
  onCertChange(handler: () => void): void {
    this.#onCertChange = handler;
  }

  /**
   * With compute_ctl_config.tls (whatever the features): waits until the certificate can be
   * read, remembers its digest, and from then on re-hashes it to notice a renewal.
   */
  async startCertWatch(): Promise<void> {
    const tls = this.opts.tls;
    if (!tls || this.#certWatch) return;
    const initial = await waitForCertDigest(tls.cert_path, { signal: this.#abort.signal });
    if (this.#certWatch) return;
    this.#certWatch = watchCert({
      path: tls.cert_path,
      initial,
      intervalMs: this.opts.tlsPollMs ?? 60_000,
      onChange: () => this.#onCertChange(),
    });
  }

  /** Ends every background task (compute_ctl is exiting). */
  stop(): void {
    this.#abort.abort(new Error("compute_ctl is shutting down"));
    this.#auditGc?.stop();
    this.#certWatch?.stop();
  }
}
