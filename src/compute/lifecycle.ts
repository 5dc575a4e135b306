// The lifecycle of one compute: wait for a spec, start, serve, terminate, exit. It orchestrates
// the other modules and owns no protocol; the HTTP routes call `configure` and `terminate`.
import type { Subprocess } from "bun";
import type { ParsedSpec } from "../api/parsed-spec.ts";
import type { PromoteState } from "../api/promote.ts";
import { computeModeType, shardIndex, staticModeLsn } from "../api/spec.ts";
import type { ComputeStatus } from "../api/status.ts";
import { formatChain, formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { startActivityMonitor } from "../monitor/activity.ts";
import { startInstalledExtensionsTask } from "../monitor/installed-extensions.ts";
import { findCoreDumps, logCoreDumpBacktraces } from "../postgres/process.ts";
import { startLsnLeaseLoop, tenantShardId } from "../storage/lsn-lease.ts";
import { syncSafekeepers } from "../storage/sync-safekeepers.ts";
import { environment, knobs } from "../testing-knobs.ts";
import { nowMicros } from "../util/clock.ts";
import { parseConnstr, startVmMonitor } from "../vm-monitor/index.ts";
import type { ComputeEnv } from "./env.ts";
import { reconfigureCompute, startCompute } from "./start.ts";

export type TerminateMode = "fast" | "immediate";

export type ConfigureResult =
  | { kind: "running" }
  | { kind: "failed"; error: string }
  | { kind: "invalid-status"; status: ComputeStatus };

export type TerminateResult =
  | { kind: "terminated"; lsn: string | null }
  | { kind: "already-terminated"; lsn: string | null }
  | { kind: "failed"; error: string }
  | { kind: "invalid-status"; status: ComputeStatus };

const TERMINATION_PENDING: readonly ComputeStatus[] = [
  "termination_pending_fast",
  "termination_pending_immediate",
];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether `err` or one of its causes is a Postgres error with SQLSTATE `code`. */
function hasSqlState(err: unknown, code: string): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === code) return true;
  }
  return false;
}

export class Lifecycle {
  #postgres: Subprocess | null = null;
  /** compute_ctl itself got SIGINT/SIGTERM/SIGQUIT: the shutdown is shutdownOnSignal's. */
  #signalled = false;
  /** The one /promote run of this compute (compute/promote.ts starts it). */
  promotion?: Promise<PromoteState>;

  constructor(
    private readonly env: ComputeEnv,
    initialSpec: ParsedSpec | null,
  ) {
    if (initialSpec) env.state.spec = initialSpec;
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
    // The monitor exists from `init` on, as in the reference; it starts polling at `running`.
    const monitor = startActivityMonitor({
      connstr: this.env.params.connstr,
      state,
      metrics: this.env.metrics,
      features: pspec.spec.features,
    });
    const background: { stop(): void }[] = [monitor];
    let startFailed = false;
    try {
      state.set("init");
      await startCompute(this.env, pspec, (pg) => {
        this.#postgres = pg;
      });
      state.set("running");
      background.push(...this.#startBackgroundTasks(pspec));
    } catch (err) {
      startFailed = true;
      log.error(`could not start the compute node: ${formatOneLine(err)}`);
      state.fail(formatChain(err));
      // A Postgres that started but could not be configured is stopped at once.
      if (this.#postgres && this.#postgres.exitCode === null) this.#postgres.kill("SIGQUIT");
    }

    let exitCode = 1;
    const pg = this.#postgres;
    if (pg) await pg.exited;
    // Nothing periodic runs against a Postgres that is gone.
    for (const task of background) task.stop();
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

  /** POST /configure: accept a new spec in `empty` or `running`, then wait for the outcome. */
  async configure(pspec: ParsedSpec): Promise<ConfigureResult> {
    const { state } = this.env;
    const from = state.status;
    if (from !== "empty" && from !== "running") return { kind: "invalid-status", status: from };
    this.env.state.spec = pspec;
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
    this.env.state.spec = pspec;
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
    state.set(mode === "fast" ? "termination_pending_fast" : "termination_pending_immediate");
    // Both modes send Postgres SIGINT (a fast shutdown with a checkpoint); they differ only in
    // how long compute_ctl lingers afterwards.
    children.forwardTermination();
    const outcome = await state.waitFor(["terminated", "failed"]);
    if (outcome === "failed") return { kind: "failed", error: state.error ?? "unknown error" };
    return { kind: "terminated", lsn: state.terminateFlushLsn };
  }

  async #reconfigure(pspec: ParsedSpec): Promise<void> {
    const { state } = this.env;
    state.set("configuration");
    try {
      await reconfigureCompute(this.env, pspec);
      state.set("running");
    } catch (err) {
      log.error(`could not configure the compute: ${formatOneLine(err)}`);
      // A statement timeout (query_canceled) usually means Postgres is stuck retrying a
      // pageserver that refuses it; the reference counts these separately.
      if (hasSqlState(err, "57014")) this.env.metrics.configureStatementTimeoutErrors.inc();
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
      const cores = await findCoreDumps(params.pgdata);
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
      return { stop: () => void monitor.stop() };
    } catch (err) {
      log.error(`could not start the vm-monitor on ${params.vmMonitorAddr}: ${formatOneLine(err)}`);
      return null;
    }
  }

  /** A Static compute keeps its LSN leased on every pageserver of every shard. */
  #startLease(pspec: ParsedSpec) {
    const lsn = staticModeLsn(pspec.spec.mode);
    if (lsn === null) return null;
    const { shardCount, shards, preferProtocol } = pspec.pageserverConnInfo;
    const pageservers = Object.entries(shards).map(([key, shard]) => {
      const shardNumber = Number.parseInt(key.slice(0, 2), 16);
      return {
        tenantShardId: tenantShardId(pspec.tenantId, shardNumber, shardCount),
        shardId: shardIndex(shardNumber, shardCount),
        protocol: preferProtocol,
        urls: shard.pageservers
          .map((p) => (preferProtocol === "grpc" ? p.grpcUrl : p.libpqUrl))
          .filter((u): u is string => u !== null),
      };
    });
    return startLsnLeaseLoop({
      pageservers,
      tenantId: pspec.tenantId,
      timelineId: pspec.timelineId,
      lsn,
      token: pspec.storageAuthToken,
    });
  }

  #linger(pending: ComputeStatus): number {
    return pending === "termination_pending_fast" ? knobs.fastLingerMs : knobs.immediateLingerMs;
  }
}
