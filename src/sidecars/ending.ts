// When compute_ctl ends the compute, pgbouncer and local_proxy end with it: pgbouncer (which
// does not lock its pid file) is SIGKILLed by the pid in /tmp/pgbouncer.pid; local_proxy gets
// SIGTERM only when a process holds its pid file's lock (otherwise it is not running).
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { hostPath } from "../util/host.ts";
import { readPidFile } from "./pid-file.ts";

export const PGBOUNCER_PIDFILE = "/tmp/pgbouncer.pid";
export const LOCAL_PROXY_PIDFILE = "/etc/local_proxy/pid";

function kill(what: string, pid: number, signal: "SIGKILL" | "SIGTERM"): void {
  log.info(`sending ${signal} to ${what} process pid: ${pid}`);
  try {
    process.kill(pid, signal);
  } catch (err) {
    log.error(`failed to terminate ${what}: ${formatOneLine(err)}`);
  }
}

export interface NeighbourPidFiles {
  pgbouncer: string;
  localProxy: string;
}

export function neighbourPidFiles(): NeighbourPidFiles {
  return { pgbouncer: hostPath(PGBOUNCER_PIDFILE), localProxy: hostPath(LOCAL_PROXY_PIDFILE) };
}

/** Ends pgbouncer and local_proxy. Never throws: each problem is one log line. */
export async function endNeighbours(files: NeighbourPidFiles = neighbourPidFiles()): Promise<void> {
  try {
    const pgb = await readPidFile(files.pgbouncer);
    if (pgb.kind === "missing") {
      log.info("pgbouncer pid file not found, process may not be running");
    } else {
      const pid = pgb.kind === "locked" ? pgb.pid : Number(pgb.content.trim());
      if (pid !== null && Number.isInteger(pid) && pid > 0) kill("pgbouncer", pid, "SIGKILL");
      else log.info("pgbouncer pid file exists but holds no pid");
    }
  } catch (err) {
    log.error(`error reading pgbouncer pid file: ${formatOneLine(err)}`);
  }
  try {
    const lp = await readPidFile(files.localProxy);
    if (lp.kind === "missing") {
      log.info("local_proxy PID file not found, process may not be running");
    } else if (lp.kind === "unlocked") {
      log.info("local_proxy PID file exists but process not running");
    } else if (lp.pid === null) {
      log.error(`local_proxy PID file is locked but holds no pid: ${JSON.stringify(lp.content)}`);
    } else {
      kill("local_proxy", lp.pid, "SIGTERM");
    }
  } catch (err) {
    log.error(`error reading local_proxy PID file: ${formatOneLine(err)}`);
  }
}
