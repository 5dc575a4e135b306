// `compute_ctl vm-monitor`: the monitor without a compute, until SIGINT or SIGTERM.
import { ConfigError, formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { releaseEarlySignalExit } from "../util/early-signals.ts";
import { ConnstrError, parseConnstr } from "./connstr.ts";
import { startVmMonitor } from "./server.ts";

export interface StandaloneOptions {
  cgroup: string | null;
  pgconnstr: string | null;
  addr: string;
}

/** Serves agents until a termination signal; returns the exit code (0 after a clean stop). */
export async function runStandalone(opts: StandaloneOptions): Promise<number> {
  let fileCache = null;
  if (opts.pgconnstr !== null) {
    try {
      fileCache = parseConnstr(opts.pgconnstr);
    } catch (err) {
      if (err instanceof ConnstrError) {
        throw new ConfigError(`invalid --pgconnstr: ${err.message}`, { cause: err });
      }
      throw err;
    }
  }
  let monitor: ReturnType<typeof startVmMonitor>;
  try {
    monitor = startVmMonitor({ addr: opts.addr, cgroup: opts.cgroup, fileCache });
  } catch (err) {
    log.error(formatOneLine(err));
    return 1;
  }
  const signal = await new Promise<string>((resolve) => {
    for (const s of ["SIGINT", "SIGTERM"] as const) process.once(s, () => resolve(s));
    // From here a signal is a clean stop (exit 0), no longer the entry's immediate exit 1.
    releaseEarlySignalExit();
  });
  log.info(`received ${signal}, stopping the vm-monitor`);
  await monitor.stop();
  return 0;
}
