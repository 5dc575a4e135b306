// What the lifecycle needs from the outside world, assembled once in run.ts: parameters,
// Postgres tooling, the state, the child registry and the metrics.
import type { Params } from "../config/params.ts";
import type { RemoteExtensions } from "../extensions/remote.ts";
import type { LfcManager } from "../lfc/manager.ts";
import type { Metrics } from "../metrics/registry.ts";
import type { PgTools } from "../postgres/tools.ts";
import type { Sidecars } from "../sidecars/sidecars.ts";
import type { Children } from "./children.ts";
import type { ComputeState } from "./state.ts";

export interface ComputeEnv {
  params: Params;
  tools: PgTools;
  pgVersion: number;
  state: ComputeState;
  children: Children;
  metrics: Metrics;
  /** Extensions downloaded on demand from --remote-ext-base-url. */
  remote: RemoteExtensions;
  /** LFC prewarm and offload (routes, autoprewarm, the periodic offload). */
  lfc: LfcManager;
  /**
   * The installed-extensions collection interval in seconds: --installed-extensions-collection-
   * interval at first, then derived from the spec's suspend timeout when it is applied.
   */
  extensionStatsIntervalSeconds: number;
  /** compute_ctl_config.tls: Postgres's certificate and key, when given. */
  tls: { key_path: string; cert_path: string } | null;
  /** pgbouncer, local_proxy, rsyslog and the other neighbours in the compute image. */
  sidecars: Sidecars;
}
