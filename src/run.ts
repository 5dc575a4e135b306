// Runs one compute from validated parameters: logging, signals, tooling, configuration, HTTP
// servers, then the lifecycle until its exit code.
import { parseSpec } from "./api/parsed-spec.ts";
import { Children } from "./compute/children.ts";
import { acquireConfig } from "./compute/config-source.ts";
import { Lifecycle } from "./compute/lifecycle.ts";
import { ComputeState } from "./compute/state.ts";
import type { Params } from "./config/params.ts";
import { ConfigError, formatOneLine } from "./errors.ts";
import { RemoteExtensions } from "./extensions/remote.ts";
import { initFailpoints } from "./failpoints.ts";
import { startHttpServers } from "./http/servers.ts";
import { LfcManager } from "./lfc/manager.ts";
import { configureLogging, log } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics/registry.ts";
import { raiseCoreLimit } from "./postgres/rlimit.ts";
import { pgMajorVersion, resolvePgTools } from "./postgres/tools.ts";
import { Sidecars } from "./sidecars/sidecars.ts";
import { environment, hostEnv, knobs, sidecarKnobs } from "./testing-knobs.ts";
import { BUILD_TAG } from "./version.ts";

const SIGNAL_NUMBERS = { SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 } as const;

/** Resolves on the first SIGINT, SIGTERM or SIGQUIT; each one received is logged. */
function terminationSignal(): Promise<void> {
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
 * Runs the compute and returns the exit code for main. A termination signal means: forward
 * termination to the children, give them a bounded time, SIGKILL what remains, exit 1 (the
 * reference exits at once and can orphan Postgres). The lifecycle owns that shutdown; before it
 * exists, the child registry is closed directly.
 */
export async function run(params: Params): Promise<number> {
  configureLogging({ level: params.logLevel, format: params.logFormat });
  log.info(`compute build_tag: ${BUILD_TAG}`);
  // Core dumps of Postgres are how crashes get diagnosed; a lower hard limit is only a warning
  // here (the reference exits 1).
  const core = raiseCoreLimit();
  if (!core.ok) log.warn(`could not raise the core dump size limit: ${core.reason}`);

  const metrics = createMetrics();
  const children = new Children();
  let lifecycle: Lifecycle | null = null;
  let signalled = false;
  const stopped = terminationSignal().then(async () => {
    signalled = true;
    if (lifecycle) return lifecycle.shutdownOnSignal();
    await children.close(knobs.childGraceMs);
    return 1;
  });

  const ran = await Promise.race([
    runCompute(params, metrics, children, (l) => {
      lifecycle = l;
    }),
    stopped,
  ]);
  // After a signal the run may end first (Postgres exits on its SIGINT); the shutdown decides.
  const code = signalled ? await stopped : ran;
  log.info("shutting down");
  return code;
}

async function runCompute(
  params: Params,
  metrics: Metrics,
  children: Children,
  onLifecycle: (l: Lifecycle) => void,
): Promise<number> {
  try {
    try {
      initFailpoints(environment.failpoints());
    } catch (err) {
      throw new ConfigError("invalid FAILPOINTS", { cause: err });
    }
    const tools = resolvePgTools(params.pgbin);
    const pgVersion = await pgMajorVersion(tools.pgConfig);
    log.info(`postgres version ${pgVersion}`, { pgbin: tools.postgres });

    const config = await acquireConfig(params, metrics);
    let pspec = null;
    if (config.spec) {
      try {
        pspec = parseSpec(config.spec);
      } catch (err) {
        throw new ConfigError("invalid compute spec", { cause: err });
      }
    }

    const state = new ComputeState(metrics, Math.floor(performance.timeOrigin * 1000));
    const lfc = new LfcManager({
      connstr: params.connstr,
      metrics,
      getSpec: () => state.spec,
    });
    const remote = new RemoteExtensions({
      baseUrl: params.remoteExtBaseUrl,
      pgConfig: tools.pgConfig,
      pgMajor: pgVersion,
      metrics,
      timings: state.timings,
    });
    const lifecycle = new Lifecycle(
      {
        remote,
        params,
        tools,
        pgVersion,
        state,
        children,
        metrics,
        lfc,
        extensionStatsIntervalSeconds: params.installedExtensionsCollectionInterval,
        tls: config.tls,
        sidecars: new Sidecars({
          tls: config.tls,
          autoscaling: hostEnv.autoscaling,
          pgbouncerPassword: hostEnv.pgbouncerPassword,
          pgbouncerPort: sidecarKnobs.pgbouncerPort,
        }),
      },
      pspec,
    );
    onLifecycle(lifecycle);
    await startHttpServers({
      params,
      state,
      metrics,
      lifecycle,
      lfc,
      remote,
      pgDump: tools.pgDump,
      jwks: config.jwks,
      instanceIdBypass: environment.instanceIdSet(),
    });
    return await lifecycle.run();
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
