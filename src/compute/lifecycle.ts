// The lifecycle of one compute: wait for a spec, start, serve, terminate, exit. It orchestrates
// the other modules and owns no protocol; the HTTP routes call `configure` and `terminate`.
import type { Subprocess } from "bun";
import type { ParsedSpec } from "../api/parsed-spec.ts";
import type { PromoteState } from "../api/promote.ts";
import { computeModeType, shardIndex, staticModeLsn } from "../api/spec.ts";
import type { ComputeStatus } from "../api/status.ts";
import { formatChain, formatOneLine } from "../errors.ts";
import { log, setLogIds } from "../log.ts";
import { startActivityMonitor } from "../monitor/activity.ts";
import { startInstalledExtensionsTask } from "../monitor/installed-extensions.ts";
import { findCoreDumps, logCoreDumpBacktraces } from "../postgres/process.ts";
import { endNeighbours } from "../sidecars/ending.ts";
import { type LsnLeaseLoop, startLsnLeaseLoop, tenantShardId } from "../storage/lsn-lease.ts";
import { syncSafekeepers } from "../storage/sync-safekeepers.ts";
import { environment, knobs } from "../testing-knobs.ts";
import { inSpan, type SpanParent, startupTraceParent } from "../tracing/index.ts";
import { nowMicros } from "../util/clock.ts";
import { hostPath } from "../util/host.ts";
import { parseConnstr, startVmMonitor } from "../vm-monitor/index.ts";
import type { ComputeEnv } from "./env.ts";
import { debugStatusName, setAttached } from "./lakebase.ts";
import { reconfigureCompute, startCompute } from "./start.ts";

export type TerminateMode = "fast" | "immediate";

export type ConfigureResult =
  | { kind: "running" }
  | { kind: "failed"; error: string }
  | { kind: "invalid-status"; status: ComputeStatus };

export type TerminateResult =
  | { kind: "terminated"; lsn: string | null }
  /** Lakebase mode, an Empty compute: 200 with no body now, the process exits 0 in 5 s. */
  | { kind: "exiting" }
  | { kind: "already-terminated"; lsn: string | null }
  | { kind: "failed"; error: string }
  | { kind: "invalid-status"; status: ComputeStatus };

/** Statuses after which a compute is never reconfigured again. */
const ENDED: readonly ComputeStatus[] = [
  "failed",
  "termination_pending_fast",
  "termination_pending_immediate",
  "terminated",
];

const TERMINATION_PENDING: readonly ComputeStatus[] = [
  "termination_pending_fast",
  "termination_pending_immediate",
];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How long a refresh waits after an unchanged or failed configuration (the reference's 5 s). */
const REFRESH_BACKOFF_MS = 5_000;
/** How long an Empty lakebase compute lives after /terminate, so the response gets out. */
const EMPTY_TERMINATE_EXIT_MS = 5_000;
/** The reference's default --pg-init-timeout. */
const DEFAULT_PG_INIT_TIMEOUT_S = 60;
/** Where lakebase computes find Postgres's core dumps. */
const LAKEBASE_CORE_DIR = "/databricks/logs/brickstore";

export type RefreshRequestResult = { ok: true } | { ok: false; error: string };

/** Where a refreshed configuration comes from: the -c/-S file or the control plane again. */
export type ReadConfig = () => Promise<ParsedSpec | null>;

function sameConnInfo(a: ParsedSpec, b: ParsedSpec): boolean {
  return JSON.stringify(a.pageserverConnInfo) === JSON.stringify(b.pageserverConnInfo);
}

/** On a signal pgbouncer and local_proxy end too, unless --dev. */
export async function endNeighboursOnSignal(dev: boolean): Promise<void> {
  if (dev) log.info("Skipping pgbouncer and local_proxy termination because in dev mode");
  else await endNeighbours();
}

export class Lifecycle {
  #postgres: Subprocess | null = null;
  /** compute_ctl itself got SIGINT/SIGTERM/SIGQUIT: the shutdown is shutdownOnSignal's. */
  #signalled = false;
  /** The span of the /configure request that started an Empty compute: start_compute's parent. */
  #configureSpan: SpanParent | null = null;
  #lease: LsnLeaseLoop | null = null;
  /** Postgres is up after a successful start: a refresh can be carried out. */
  #configuratorUp = false;
  #refreshing = false;
  #exitResolve!: (code: number) => void;
  #exitCode: number | null = null;
  /**
   * Resolves with an exit code when the compute must end now, whatever run() is doing: an Empty
   * lakebase compute after /terminate (0), an empty refreshed configuration (1), the lakebase
   * start-up guard (1). The caller stops the children and exits with it.
   */
  readonly forcedExit: Promise<number> = new Promise((resolve) => {
    this.#exitResolve = resolve;
  });
  /** The one /promote run of this compute (compute/promote.ts starts it). */
  promotion?: Promise<PromoteState>;

  constructor(
    private readonly env: ComputeEnv,
    initialSpec: ParsedSpec | null,
    private readonly readConfig: ReadConfig = async () => {
      throw new Error("config_path_test_only is not set");
    },
  ) {
    if (initialSpec) {
      env.state.spec = initialSpec;
      this.#recordSpec(initialSpec);
    }
    env.sidecars.onCertChange(() => void this.#certChanged());
  }

  /** The current spec, which the compute's state holds. */
  get spec(): ParsedSpec | null {
    return this.env.state.spec;
  }

  /**
   * compute_ctl got SIGINT, SIGTERM or SIGQUIT: Postgres's exit is then expected, and there is no
   * shutdown sync (the reference exits at once on a signal). Every child gets its termination
   * signal and a bounded time, then SIGKILL, so none is orphaned. Resolves with the exit code, 1.
   */
  async shutdownOnSignal(): Promise<number> {
    this.#signalled = true;
    await endNeighboursOnSignal(this.env.params.dev);
    await this.env.children.close(knobs.childGraceMs);
    return 1;
  }

  /** Runs the compute to its end and returns the process exit code. */
  async run(): Promise<number> {
    const { state } = this.env;
    if (!state.spec) {
      log.info("no compute spec provided, waiting for one via /configure");
      const woke = await state.waitFor(["configuration_pending", ...TERMINATION_PENDING]);
      if (TERMINATION_PENDING.includes(woke)) {
        // Nothing runs yet, so there is nothing to stop: terminate at once. (The reference hangs.)
        state.set("terminated");
        await sleep(this.#linger(woke));
        return 0;
      }
      const now = nowMicros();
      state.timings.wait_for_spec_ms = Math.max(
        0,
        Math.round((now - state.startTimeMicros) / 1000),
      );
      state.startTimeMicros = now;
    }
    const pspec = state.spec;
    if (!pspec) throw new Error("internal error: woke up for configuration without a spec");

    const lease = this.#startLease(pspec);
    this.#lease = lease;
    // The monitor exists from `init` on, as in the reference; it starts polling at `running`.
    const monitor = startActivityMonitor({
      connstr: this.env.params.connstr,
      state,
      metrics: this.env.metrics,
      features: pspec.spec.features,
    });
    const background: { stop(): void }[] = [monitor];
    let startFailed = false;
    let guard: Timer | undefined;
    try {
      state.set("init");
      guard = this.#startInitGuard();
      // Part of the /configure request that brought the spec, else of TRACEPARENT's trace.
      await inSpan(
        "start_compute",
        () =>
          startCompute(this.env, pspec, (pg) => {
            this.#postgres = pg;
          }),
        { parent: this.#configureSpan ?? startupTraceParent() },
      );
      await this.env.startHooks?.beforeRunning();
      clearTimeout(guard);
      if (this.#exitCode !== null) return this.#exitCode;
      state.set("running");
      this.#configuratorUp = true;
      background.push(...this.#startBackgroundTasks(pspec));
    } catch (err) {
      clearTimeout(guard);
      if (this.#exitCode !== null) return this.#exitCode;
      startFailed = true;
      log.error(`could not start the compute node: ${formatOneLine(err)}`);
      state.fail(formatChain(err));
      // A Postgres that started but could not be configured is stopped at once.
      if (this.#postgres && this.#postgres.exitCode === null) this.#postgres.kill("SIGQUIT");
    }

    let exitCode = 1;
    const pg = this.#postgres;
    if (pg) await pg.exited;
    this.#configuratorUp = false;
    if (this.#exitCode !== null) return this.#exitCode;
    // Nothing periodic runs against a Postgres that is gone.
    for (const task of background) task.stop();
    this.env.sidecars.stop();
    this.env.lfc.stop();
    lease?.stop();
    if (this.#signalled) return 1;
    if (pg) {
      const code = pg.signalCode ? null : pg.exitCode;
      log.info(`Postgres exited with code ${code ?? "None"}, shutting down`);
      exitCode = code ?? 1;
      if (!startFailed && !TERMINATION_PENDING.includes(state.status)) {
        // Nobody asked for this: say so before the shutdown sync (the reference stays `running`).
        const why = `postgres exited unexpectedly with code ${code ?? `signal ${pg.signalCode}`}`;
        log.error(why);
        state.fail(why);
      }
    }
    // Nothing compute_ctl started may outlive it (a sync-safekeepers still running, say).
    await this.env.children.drain(knobs.childGraceMs);

    // The current spec: a promoted replica is a Primary now and syncs safekeepers on shutdown.
    const cleanupOk = await this.#cleanupAfterPostgres(state.spec ?? pspec);
    if (TERMINATION_PENDING.includes(state.status)) {
      const pending = state.status;
      state.set("terminated");
      await sleep(this.#linger(pending));
    } else if (startFailed) {
      // Keep serving /status so the control plane can read the error, then exit 1 — also when
      // Postgres had started (the reference then exits with Postgres's code, often 0).
      await sleep(knobs.failedExitDelayMs);
    } else {
      await sleep(knobs.immediateLingerMs);
    }
    if (startFailed || !cleanupOk) return 1;
    return exitCode;
  }

  /**
   * POST /configure: accept a new spec in `empty` or `running`, then wait for the outcome.
   * `span` is the request's trace span; an Empty compute's start becomes part of it.
   */
  async configure(pspec: ParsedSpec, span: SpanParent | null = null): Promise<ConfigureResult> {
    const { state } = this.env;
    const from = state.status;
    if (from !== "empty" && from !== "running") return { kind: "invalid-status", status: from };
    if (from === "empty") this.#configureSpan = span;
    this.#adoptSpec(pspec);
    state.set("configuration_pending");
    if (from === "running") void this.#reconfigure(pspec);
    const outcome = await state.waitFor(["running", "failed"]);
    if (outcome === "running") return { kind: "running" };
    return { kind: "failed", error: state.error ?? "unknown error" };
  }

  /**
   * /promote, once Postgres is promoted: the compute adopts the old primary's spec (mode Primary)
   * and is reconfigured from it. Unlike /configure the status stays `running`, as in the
   * reference; a failure is thrown to the promotion, which reports it, and is not a compute failure.
   */
  async adoptPromotedSpec(pspec: ParsedSpec): Promise<void> {
    this.#adoptSpec(pspec);
    await reconfigureCompute(this.env, pspec);
  }

  /** POST /terminate: ask the compute to stop and wait until it has. */
  async terminate(mode: TerminateMode): Promise<TerminateResult> {
    const { state, children } = this.env;
    if (state.status === "terminated") {
      return { kind: "already-terminated", lsn: state.terminateFlushLsn };
    }
    if (state.status !== "empty" && state.status !== "running") {
      return { kind: "invalid-status", status: state.status };
    }
    if (this.env.params.lakebaseMode && state.status === "empty") {
      // No Postgres to stop: the process simply ends, a little later so the answer gets out.
      log.info("terminating empty compute - will exit process");
      setTimeout(() => {
        log.info("exiting process after terminating empty compute");
        this.#exit(0);
      }, EMPTY_TERMINATE_EXIT_MS);
      return { kind: "exiting" };
    }
    state.set(mode === "fast" ? "termination_pending_fast" : "termination_pending_immediate");
    // pgbouncer and local_proxy end with the compute (also with --dev, as in the reference).
    await endNeighbours();
    // Both modes send Postgres SIGINT (a fast shutdown with a checkpoint); they differ only in
    // how long compute_ctl lingers afterwards.
    children.forwardTermination();
    const outcome = await state.waitFor(["terminated", "failed"]);
    if (outcome === "failed") return { kind: "failed", error: state.error ?? "unknown error" };
    return { kind: "terminated", lsn: state.terminateFlushLsn };
  }

  /**
   * The TLS certificate was renewed: once the compute is running, reconfigure it (new key files,
   * Postgres reload, pgbouncer, local_proxy) through the normal path. A configuration already
   * pending does the same work; a compute that failed or is ending is left alone.
   */
  async #certChanged(): Promise<void> {
    const { state } = this.env;
    const now = await state.waitFor(["running", "configuration_pending", ...ENDED]);
    const pspec = state.spec;
    if (now !== "running" || !pspec) return;
    log.info("TLS certificate renewed: reconfiguring the compute");
    state.set("configuration_pending");
    await this.#reconfigure(pspec);
  }

  async #reconfigure(pspec: ParsedSpec): Promise<void> {
    const { state } = this.env;
    state.set("configuration");
    try {
      await reconfigureCompute(this.env, pspec);
      state.set("running");
    } catch (err) {
      log.error(`could not configure the compute: ${formatOneLine(err)}`);
      state.fail(formatChain(err));
    }
  }

  /**
   * After Postgres has exited (or never started): a Primary syncs the safekeepers once, so the
   * last flushed LSN is known; then core dumps are reported. Returns false when the sync failed.
   */
  async #cleanupAfterPostgres(pspec: ParsedSpec): Promise<boolean> {
    const { state, params, tools, children } = this.env;
    let ok = true;
    if (computeModeType(pspec.spec.mode) === "primary") {
      log.info("syncing safekeepers on shutdown");
      try {
        state.terminateFlushLsn = await syncSafekeepers({
          pgbin: tools.postgres,
          pgdata: params.pgdata,
          token: pspec.storageAuthToken,
          children,
        });
        log.info(`synced safekeepers at lsn ${state.terminateFlushLsn}`);
      } catch (err) {
        ok = false;
        log.error(`failed to sync safekeepers on shutdown: ${formatOneLine(err)}`);
        if (TERMINATION_PENDING.includes(state.status)) {
          state.fail(
            formatChain(new Error("failed to sync safekeepers on shutdown", { cause: err })),
          );
        }
      }
    }
    try {
      // Lakebase wipes PGDATA across container restarts, so its cores go to a fixed directory.
      const cores = await findCoreDumps(
        params.pgdata,
        params.lakebaseMode ? hostPath(LAKEBASE_CORE_DIR) : undefined,
      );
      if (cores.length > 0) await logCoreDumpBacktraces(tools.postgres, cores);
    } catch (err) {
      log.warn(`could not look for core dumps: ${formatOneLine(err)}`);
    }
    return ok;
  }

  /**
   * After the first start: the periodic installed-extensions collection, the saved LFC state
   * loaded if asked (autoprewarm) and offloaded periodically. None is re-armed by a reconfigure,
   * as in the reference.
   */
  #startBackgroundTasks(pspec: ParsedSpec): { stop(): void }[] {
    const { lfc, params, metrics } = this.env;
    const tasks: { stop(): void }[] = [
      startInstalledExtensionsTask({
        connstr: params.connstr,
        metrics,
        intervalSeconds: () =>
          this.env.state.extensionStatsIntervalSeconds ?? this.env.extensionStatsIntervalSeconds,
        yieldTo: () => this.env.state.whenNotApplying(),
      }),
    ];
    if (pspec.spec.autoprewarm) lfc.prewarm();
    const interval = pspec.spec.offload_lfc_interval_seconds;
    if (interval) tasks.push(lfc.startPeriodicOffload(interval));
    const vmMonitor = environment.autoscaling() ? this.#startVmMonitor(pspec) : null;
    if (vmMonitor) tasks.push(vmMonitor);
    return tasks;
  }

  /**
   * On an autoscaling VM, the vm-monitor: it watches --cgroup and, unless the spec disables LFC
   * resizing, sizes the file cache through --filecache-connstr. A failure to start it is one ERROR
   * line; the compute keeps serving Postgres.
   */
  #startVmMonitor(pspec: ParsedSpec): { stop(): void } | null {
    const { params, metrics } = this.env;
    try {
      const fileCache = pspec.spec.disable_lfc_resizing
        ? null
        : parseConnstr(params.filecacheConnstr);
      const monitor = startVmMonitor({
        addr: params.vmMonitorAddr,
        cgroup: params.cgroup,
        fileCache,
        metrics: {
          setConnected: (c) => metrics.vmMonitorConnected.set(c ? 1 : 0),
          upscaleRequested: () => metrics.vmMonitorUpscaleRequests.inc(),
          setThreshold: (b) => metrics.vmMonitorMemoryThreshold.set(b),
          setFileCacheSize: (b) => metrics.vmMonitorFileCacheSize.set(b),
        },
      });
      return {
        stop: () =>
          void monitor
            .stop()
            .catch((err) => log.warn(`stopping the vm-monitor: ${formatOneLine(err)}`)),
      };
    } catch (err) {
      log.error(`could not start the vm-monitor on ${params.vmMonitorAddr}: ${formatOneLine(err)}`);
      return null;
    }
  }

  /**
   * A Static compute keeps its LSN leased on every pageserver of every shard. The pageserver list
   * and the token are read from the current spec before each attempt, and a spec that moves the
   * pageservers wakes the loop (see #adoptSpec).
   */
  #startLease(pspec: ParsedSpec) {
    const lsn = staticModeLsn(pspec.spec.mode);
    if (lsn === null) return null;
    const tenantId = pspec.tenantId;
    const current = () => this.env.state.spec ?? pspec;
    return startLsnLeaseLoop({
      pageservers: () => leaseShards(tenantId, current()),
      tenantId,
      timelineId: pspec.timelineId,
      lsn,
      token: () => current().storageAuthToken,
    });
  }

  /** A new spec becomes the compute's: recorded, and the lease loop woken if pageservers moved. */
  #adoptSpec(pspec: ParsedSpec): void {
    const before = this.env.state.spec;
    this.env.state.spec = pspec;
    this.#recordSpec(pspec);
    if (before && !sameConnInfo(before, pspec)) {
      log.info("Pageserver config changed");
      this.#lease?.wake();
    }
  }

  /** The process must end with `code` now (see forcedExit). The first call wins. */
  #exit(code: number): void {
    if (this.#exitCode !== null) return;
    this.#exitCode = code;
    this.#exitResolve(code);
  }

  /**
   * Lakebase mode: a compute that is not `running` within --pg-init-timeout (60 s) of the start
   * exits 1, since Postgres was probably started with a spec pointing at the wrong storage.
   */
  #startInitGuard(): Timer | undefined {
    if (!this.env.params.lakebaseMode) return undefined;
    const seconds = this.env.params.pgInitTimeout ?? DEFAULT_PG_INIT_TIMEOUT_S;
    return setTimeout(() => {
      if (this.env.state.status === "running") return;
      log.error(`compute did not enter Running state in ${seconds} seconds, exiting`);
      this.#exit(1);
    }, seconds * 1000);
  }

  /**
   * POST /refresh_configuration: from running, failed or refresh_configuration_pending the
   * compute becomes refresh_configuration_pending and the configuration is read again; in init
   * nothing changes (the request is accepted); any other status is an error.
   */
  requestRefresh(): RefreshRequestResult {
    const { state } = this.env;
    const from = state.status;
    if (from === "init") return { ok: true };
    if (from !== "running" && from !== "failed" && from !== "refresh_configuration_pending") {
      return {
        ok: false,
        error: `Cannot refresh compute configuration in state ${debugStatusName(from)}`,
      };
    }
    if (from !== "refresh_configuration_pending") state.set("refresh_configuration_pending");
    this.#kickRefresh();
    return { ok: true };
  }

  #kickRefresh(): void {
    if (this.#refreshing || !this.#configuratorUp) return;
    this.#refreshing = true;
    void this.#refreshLoop()
      .catch((err) => log.error(`configuration refresh failed: ${formatOneLine(err)}`))
      .finally(() => {
        this.#refreshing = false;
      });
  }

  /** Moves on from refresh_configuration, unless something else (a failure) moved it already. */
  #refreshDone(to: ComputeStatus): boolean {
    if (this.env.state.status !== "refresh_configuration") return false;
    this.env.state.set(to);
    return true;
  }

  /**
   * The configurator's refresh: read the configuration again; the same pageservers → running
   * (and a 5 s pause); other pageservers → adopt the spec and reconfigure; no spec (the compute
   * was detached) → exit 1; an error → pending again, retried after 5 s.
   */
  async #refreshLoop(): Promise<void> {
    const { state } = this.env;
    while (this.#configuratorUp && state.status === "refresh_configuration_pending") {
      log.info(
        "compute node suspects its configuration is out of date, now refreshing configuration",
      );
      state.set("refresh_configuration");
      let next: ParsedSpec | null;
      try {
        next = await this.readConfig();
      } catch (err) {
        log.error(`Refresh configuration: error getting a parsed spec: ${formatOneLine(err)}`);
        if (!this.#refreshDone("refresh_configuration_pending")) return;
        await sleep(REFRESH_BACKOFF_MS);
        continue;
      }
      if (next === null) {
        log.info(
          "Compute Manager signaled that this compute is no longer attached to any storage. Exiting.",
        );
        this.#exit(1);
        return;
      }
      const current = this.env.state.spec;
      if (current && sameConnInfo(current, next)) {
        log.info(
          "Refresh configuration: Retrieved spec is the same as the current spec. Waiting for control plane to update the spec before attempting reconfiguration.",
        );
        if (!this.#refreshDone("running")) return;
        await sleep(REFRESH_BACKOFF_MS);
        continue;
      }
      this.#adoptSpec(next);
      try {
        await reconfigureCompute(this.env, next);
        log.info("Refresh configuration: compute node configured");
        if (!this.#refreshDone("running")) return;
      } catch (err) {
        log.error(`Refresh configuration: could not configure compute node: ${formatOneLine(err)}`);
        if (!this.#refreshDone("refresh_configuration_pending")) return;
        await sleep(REFRESH_BACKOFF_MS);
      }
    }
  }

  #linger(pending: ComputeStatus): number {
    return pending === "termination_pending_fast" ? knobs.fastLingerMs : knobs.immediateLingerMs;
  }

  /** Lakebase: the attached gauge and the file logs' ids follow the spec. */
  #recordSpec(pspec: ParsedSpec): void {
    const { params, instanceId } = this.env;
    if (params.lakebaseMode) {
      if (instanceId !== null) {
        setAttached(this.env.metrics, { computeId: params.computeId, instanceId }, pspec);
      }
      setLogIds({ instanceId: instanceId ?? "", computeId: params.computeId });
    }
  }
}

/** The lease targets of a spec: every shard's pageservers, in the protocol the spec prefers. */
function leaseShards(tenantId: string, pspec: ParsedSpec) {
  const { shardCount, shards, preferProtocol } = pspec.pageserverConnInfo;
  return Object.entries(shards).map(([key, shard]) => {
    const shardNumber = Number.parseInt(key.slice(0, 2), 16);
    return {
      tenantShardId: tenantShardId(tenantId, shardNumber, shardCount),
      shardId: shardIndex(shardNumber, shardCount),
      protocol: preferProtocol,
      urls: shard.pageservers
        .map((p) => (preferProtocol === "grpc" ? p.grpcUrl : p.libpqUrl))
        .filter((u): u is string => u !== null),
    };
  });
}
