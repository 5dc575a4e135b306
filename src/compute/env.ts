// What the lifecycle needs from the outside world, assembled once in run.ts and never changed:
// parameters, Postgres tooling, the state, the child registry and the metrics.
import type { TlsConfig } from "../api/spec.ts";
import type { Params } from "../config/params.ts";
import type { RemoteExtensions } from "../extensions/remote.ts";
import type { LfcManager } from "../lfc/manager.ts";
import type { Metrics } from "../metrics/registry.ts";
import type { PgTools } from "../postgres/tools.ts";
import type { Sidecars } from "../sidecars/sidecars.ts";
import type { Children } from "./children.ts";
import type { ComputeState } from "./state.ts";

/**
 * Moments of the start that run.ts schedules work on, so that what the start does not need (the
 * HTTP servers) runs while the pageserver streams rather than before the basebackup request.
 */
export interface StartHooks {
  /** The basebackup's first byte arrived (called once per attempt; extra calls are harmless). */
  streaming(): void;
  /** Awaited before the status becomes `running`: what must be up by then. */
  beforeRunning(): Promise<void>;
}

/** Fixed for the life of the process: what changes lives in ComputeState. */
export interface ComputeEnv {
  readonly params: Params;
  readonly tools: PgTools;
  readonly pgVersion: number;
  readonly state: ComputeState;
  readonly children: Children;
  readonly metrics: Metrics;
  /** Extensions downloaded on demand from --remote-ext-base-url. */
  readonly remote: RemoteExtensions;
  /** LFC prewarm and offload (routes, autoprewarm, the periodic offload). */
  readonly lfc: LfcManager;
  /**
   * --installed-extensions-collection-interval in seconds: the collection interval until a spec
   * is applied (the state then holds the one derived from the spec).
   */
  readonly extensionStatsIntervalSeconds: number;
  /** INSTANCE_ID (Hadron): the instance this compute serves; null when unset. */
  readonly instanceId: string | null;
  /** compute_ctl_config.tls: Postgres's certificate and key, when given. */
  readonly tls: TlsConfig | null;
  /** pgbouncer, local_proxy, rsyslog and the other neighbours in the compute image. */
  readonly sidecars: Sidecars;
  /** See StartHooks; absent, nothing is deferred. */
  readonly startHooks?: StartHooks;
}
