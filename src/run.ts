// Runs one compute from validated parameters: logging, signals, tooling, configuration, HTTP
// servers, then the lifecycle until its exit code.
import { parseSpec } from "./api/parsed-spec.ts";
import { Children } from "./compute/children.ts";
import { acquireConfig } from "./compute/config-source.ts";
import { endNeighboursOnSignal, Lifecycle } from "./compute/lifecycle.ts";
import { type Readiness, reportReadiness } from "./compute/readiness.ts";
import { ComputeState } from "./compute/state.ts";
import type { Params } from "./config/params.ts";
import { ConfigError, formatOneLine } from "./errors.ts";
import { RemoteExtensions } from "./extensions/remote.ts";
import { initFailpoints } from "./failpoints.ts";
import { LfcManager } from "./lfc/manager.ts";
import { configureLogging, log } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics/registry.ts";
import { raiseCoreLimit } from "./postgres/rlimit.ts";
import { pgMajorVersion, resolvePgTools } from "./postgres/tools.ts";
import { Sidecars } from "./sidecars/sidecars.ts";
import {
  environment,
  hostEnv,
  knobs,
  peerKnobs,
  serviceEnv,
  sidecarKnobs,
  takeNotifySocket,
} from "./testing-knobs.ts";
import { tracingConfigFromEnv } from "./tracing/config.ts";
import { initTracing, shutdownTracing } from "./tracing/index.ts";
import { releaseEarlySignalExit } from "./util/early-signals.ts";
import { releaseIdleMemorySoon } from "./util/idle-memory.ts";
import type { SdNotifier } from "./util/sd-notify.ts";
import { parentDeathWarning } from "./util/spawn.ts";
import { BUILD_TAG } from "./version.ts";

/**
 * The latest the HTTP servers start after a start with a spec began: the basebackup's first byte
 * usually comes sooner, and a start that waits on something else (a safekeeper sync, the TLS
 * files, a slow pageserver) has its API up all the same.
 */
const SERVERS_LATEST_MS = 100;

const SIGNAL_NUMBERS = { SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 } as const;

/** Resolves on the first SIGINT, SIGTERM or SIGQUIT; each one received is logged. */
function terminationSignal(): Promise<void> {
  releaseEarlySignalExit();
  return new Promise((resolve) => {
    for (const [name, signo] of Object.entries(SIGNAL_NUMBERS)) {
      process.on(name, () => {
        log.info(`received ${signo} termination signal`);
        resolve();
      });
    }
  });
}

/**
 * The systemd notification socket (Type=notify), when NOTIFY_SOCKET names one. It is removed from
 * the environment either way: a child that inherits it (Debian's Postgres) would report READY=1
 * on its own, before the compute is running.
 */
async function openNotifySocket(): Promise<SdNotifier | null> {
  const address = takeNotifySocket();
  if (!address) return null;
  try {
    const { openSdNotify } = await import("./util/sd-notify.ts");
    return openSdNotify(address, (message) => log.warn(message));
  } catch (err) {
    log.warn(`cannot notify systemd: ${formatOneLine(err)}`);
    return null;
  }
}

/** OpenTelemetry traces unless OTEL_SDK_DISABLED=true; a bad setting only turns them off. */
async function startTracing(): Promise<void> {
  const { config, problem } = tracingConfigFromEnv(serviceEnv, "compute_ctl");
  if (problem) log.warn(problem);
  try {
    await initTracing(config);
  } catch (err) {
    log.warn(`tracing is off: ${formatOneLine(err)}`);
  }
}

/**
 * Runs the compute and returns the exit code for main. A termination signal means: forward
 * termination to the children, give them a bounded time, SIGKILL what remains, exit 1 (the
 * reference exits at once and can orphan Postgres). The lifecycle owns that shutdown; before it
 * exists, the child registry is closed directly.
 */
export async function run(params: Params, marks: { parsedAt?: number } = {}): Promise<number> {
  const loadedAt = performance.now();
  configureLogging({
    level: params.logLevel,
    format: params.logFormat,
    fileDirectory: params.lakebaseMode ? environment.logDirectory() : null,
  });
  // Start-up phase marks for bench/startup.ts (debug level): when the runtime started and when
  // the command line was parsed, as wall-clock times.
  log.debug("start phase runtime_started", { at: isoAt(0) });
  if (marks.parsedAt !== undefined) {
    log.debug("start phase flags_parsed", { at: isoAt(marks.parsedAt) });
  }
  log.debug("start phase modules_loaded", { at: isoAt(loadedAt) });
  log.info(`compute build_tag: ${BUILD_TAG}`);
  const notifier = await openNotifySocket();
  await startTracing();
  // Core dumps of Postgres are how crashes get diagnosed; a lower hard limit is only a warning
  // here (the reference exits 1).
  const core = raiseCoreLimit();
  if (!core.ok) log.warn(`could not raise the core dump size limit: ${core.reason}`);
  const orphanRisk = parentDeathWarning();
  if (orphanRisk) log.warn(orphanRisk);

  const metrics = createMetrics();
  const children = new Children();
  let lifecycle: Lifecycle | null = null;
  let readiness: Readiness | null = null;
  let signalled = false;
  const stopped = terminationSignal().then(async () => {
    signalled = true;
    readiness?.stopping();
    if (lifecycle) return lifecycle.shutdownOnSignal();
    await endNeighboursOnSignal(params.dev);
    await children.close(knobs.childGraceMs);
    return 1;
  });

  const ran = await Promise.race([
    runCompute(params, metrics, children, {
      onLifecycle: (l) => {
        lifecycle = l;
      },
      onState: (state) => {
        if (notifier) readiness = reportReadiness(state, (message) => notifier.send(message));
      },
    }),
    stopped,
  ]);
  // After a signal the run may end first (Postgres exits on its SIGINT); the shutdown decides.
  const code = signalled ? await stopped : ran;
  // Set in the callback above; TypeScript cannot see that.
  const r = readiness as Readiness | null;
  if (r) r.stopping();
  else notifier?.send("STOPPING=1");
  await shutdownTracing();
  notifier?.close();
  log.info("shutting down");
  return code;
}

/** A `performance.now()` reading as an ISO wall-clock time with microseconds. */
function isoAt(perfMs: number): string {
  const micros = Math.round((performance.timeOrigin + perfMs) * 1000);
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  return `${iso.slice(0, -1)}${String(micros % 1000).padStart(3, "0")}Z`;
}

/** A configuration refresh: the same source as at start-up, read again; null means no spec. */
async function rereadSpec(params: Params, metrics: Metrics) {
  if (params.configPath) log.info(`reloading config.json from path: ${params.configPath}`);
  const config = await acquireConfig(params, metrics);
  if (!config.spec) return null;
  try {
    return parseSpec(config.spec, { privilegedRoleName: params.privilegedRoleName });
  } catch (err) {
    throw new Error("could not parse spec", { cause: err });
  }
}

async function runCompute(
  params: Params,
  metrics: Metrics,
  children: Children,
  hooks: { onLifecycle: (l: Lifecycle) => void; onState: (s: ComputeState) => void },
): Promise<number> {
  try {
    try {
      initFailpoints(environment.failpoints());
    } catch (err) {
      throw new ConfigError("invalid FAILPOINTS", { cause: err });
    }
    const tools = resolvePgTools(params.pgbin);
    // pg_config runs while the configuration is read (the reference reads the configuration
    // first); its failure is still the one reported when both fail.
    const acquired = acquireConfig(params, metrics);
    acquired.catch(() => {});
    const pgVersion = await pgMajorVersion(tools.pgConfig);
    log.info(`postgres version ${pgVersion}`, { pgbin: tools.postgres });

    const config = await acquired;
    let pspec = null;
    if (config.spec) {
      try {
        pspec = parseSpec(config.spec, { privilegedRoleName: params.privilegedRoleName });
      } catch (err) {
        throw new ConfigError("invalid compute spec", { cause: err });
      }
    }
    log.debug("start phase config_read");

    const state = new ComputeState(metrics, Math.floor(performance.timeOrigin * 1000));
    hooks.onState(state);
    state.onChange((to) => {
      if (to === "running") releaseIdleMemorySoon();
    });
    const lfc = new LfcManager({
      connstr: params.connstr,
      metrics,
      getSpec: () => state.spec,
      fetchTimeoutMs: peerKnobs.endpointStorageTimeoutMs,
    });
    const remote = new RemoteExtensions({
      baseUrl: params.remoteExtBaseUrl,
      pgConfig: tools.pgConfig,
      pgMajor: pgVersion,
      metrics,
      timings: state.timings,
    });
    // With a spec, the HTTP servers start while the basebackup streams (see StartHooks), or
    // SERVERS_LATEST_MS after the start began when it waits on something else first.
    const serversGo = Promise.withResolvers<void>();
    const serversUp = Promise.withResolvers<void>();
    const lifecycle = new Lifecycle(
      {
        startHooks: {
          streaming: () => serversGo.resolve(),
          // `running` is declared only once the API is up; when the servers failed, never (the
          // failure ends the process).
          beforeRunning: () => serversUp.promise,
        },
        remote,
        params,
        tools,
        pgVersion,
        state,
        children,
        metrics,
        lfc,
        extensionStatsIntervalSeconds: params.installedExtensionsCollectionInterval,
        instanceId: environment.instanceId(),
        tls: config.tls,
        sidecars: new Sidecars({
          tls: config.tls,
          autoscaling: hostEnv.autoscaling,
          pgbouncerPassword: hostEnv.pgbouncerPassword,
          pgbouncerPort: sidecarKnobs.pgbouncerPort,
          auditEndpoint: hostEnv.auditEndpoint,
          auditTlsEndpoint: hostEnv.auditTlsEndpoint,
          auditGcMs: sidecarKnobs.auditGcMs,
          tlsPollMs: sidecarKnobs.tlsPollMs,
          setAuditLogDirSize: (bytes) => metrics.auditLogDirSize.set(bytes),
        }),
      },
      pspec,
      () => rereadSpec(params, metrics),
    );
    hooks.onLifecycle(lifecycle);
    const servers = serversGo.promise.then(async () => {
      const { startHttpServers } = await import("./http/servers.ts");
      return startHttpServers({
        params,
        state,
        metrics,
        lifecycle,
        lfc,
        remote,
        pgDump: tools.pgDump,
        pgIsready: tools.pgIsready,
        jwks: config.jwks,
        instanceIdBypass: environment.instanceIdSet(),
      });
    });
    void servers.then(
      () => serversUp.resolve(),
      () => {},
    );
    if (!pspec) {
      // Nothing happens until /configure arrives: the servers come first.
      serversGo.resolve();
      await servers;
      // Loading the program and starting the servers is a burst like a start: an Empty compute
      // then idles ~0.7 MiB lower.
      releaseIdleMemorySoon();
    } else {
      const latest = setTimeout(() => serversGo.resolve(), SERVERS_LATEST_MS);
      void serversGo.promise.then(() => clearTimeout(latest));
      // A start that fails first has its outcome served all the same.
      void state.waitFor(["running", "failed"]).then(() => serversGo.resolve());
    }
    const serversFailed = servers.then(
      () => new Promise<never>(() => {}),
      (err) => ({ serversFailed: err as unknown }),
    );
    const outcome = await Promise.race([lifecycle.run(), lifecycle.forcedExit, serversFailed]);
    if (typeof outcome !== "number") {
      // The compute cannot be operated without its API: the start stops here, and every child
      // (a Postgres already started, say) is stopped; none may be spawned from now on.
      log.error(`compute_ctl failed: ${formatOneLine(outcome.serversFailed)}`);
      await children.close(knobs.childGraceMs);
      return 1;
    }
    // A forced exit leaves run() where it was: stop what compute_ctl started before leaving.
    await children.close(knobs.childGraceMs);
    return outcome;
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error(formatOneLine(err));
    } else {
      log.error(`compute_ctl failed: ${formatOneLine(err)}`);
      log.debug(err instanceof Error ? (err.stack ?? "") : String(err));
    }
    await children.drain(knobs.childGraceMs);
    return 1;
  }
}
