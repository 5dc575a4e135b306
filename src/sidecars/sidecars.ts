// The compute's neighbours as the lifecycle sees them: one object per compute_ctl run that knows
// how this host reaches pgbouncer and local_proxy, and runs their background tasks one after
// another so two reconfigures never interleave their writes.
import type { ComputeSpec, TlsConfig } from "../api/spec.ts";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { configureLocalProxy, type LocalProxyPaths, localProxyPaths } from "./local-proxy.ts";
import { type PgbouncerTarget, pgbouncerTarget, tunePgbouncer } from "./pgbouncer.ts";

export interface SidecarsOptions {
  /** compute_ctl_config.tls; the sidecars use it only with the `tls_experimental` feature. */
  tls: TlsConfig | null;
  autoscaling: boolean;
  pgbouncerPassword: string | null;
  pgbouncerPort: number;
}

export class Sidecars {
  readonly pgbouncer: PgbouncerTarget;
  readonly localProxy: LocalProxyPaths = localProxyPaths();
  readonly #abort = new AbortController();
  #pgbouncerQueue: Promise<void> = Promise.resolve();
  #localProxyQueue: Promise<unknown> = Promise.resolve();

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

  /** Ends every background task (compute_ctl is exiting). */
  stop(): void {
    this.#abort.abort(new Error("compute_ctl is shutting down"));
  }
}
