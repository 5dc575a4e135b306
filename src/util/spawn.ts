// Every process compute_ctl starts goes through `spawnChild`, so that none outlives it: on Linux
// the child is started through util-linux's `setpriv --pdeathsig KILL`, which asks the kernel to
// SIGKILL it when compute_ctl dies, however it dies (SIGKILL included). The setting survives the
// exec into the real program (none of them is set-uid), so the pid Bun returns is the program's.
// Postgres's own processes notice their postmaster's death by themselves.
import { accessSync, constants } from "node:fs";
import type { SpawnOptions, Subprocess } from "bun";
import { environment } from "../testing-knobs.ts";

let prefix: string[] | undefined;
let missingWarning: string | null = null;

/** The command prefix that sets the parent-death signal, or [] where setpriv is not found. */
export function parentDeathPrefix(): string[] {
  if (prefix === undefined) {
    const setpriv =
      process.platform === "linux"
        ? Bun.which("setpriv", { PATH: environment.path() ?? "" })
        : null;
    prefix = setpriv ? [setpriv, "--pdeathsig", "KILL", "--"] : [];
    if (!setpriv && process.platform === "linux") {
      missingWarning =
        "setpriv (util-linux) not found on PATH: child processes will not be killed if compute_ctl dies";
    }
  }
  return prefix;
}

/** A warning to log once when children cannot get a parent-death signal (null when they can). */
export function parentDeathWarning(): string | null {
  parentDeathPrefix();
  return missingWarning;
}

/** The error Bun.spawn throws for a program it cannot run, for the checks below. */
function spawnError(code: "ENOENT" | "EACCES", path: string): Error {
  const text = code === "ENOENT" ? "no such file or directory" : "permission denied";
  return Object.assign(new Error(`${code}: ${text}, posix_spawn '${path}'`), {
    code,
    errno: code === "ENOENT" ? -2 : -13,
    syscall: "posix_spawn",
    path,
  });
}

/**
 * Bun.spawn with the parent-death signal. The program is checked first, so a missing or
 * non-executable one still throws at spawn (as Bun.spawn would) rather than failing in setpriv.
 */
export function spawnChild<
  const In extends SpawnOptions.Writable = "ignore",
  const Out extends SpawnOptions.Readable = "pipe",
  const Err extends SpawnOptions.Readable = "inherit",
>(cmd: string[], opts: SpawnOptions.SpawnOptions<In, Out, Err> = {}): Subprocess<In, Out, Err> {
  const pre = parentDeathPrefix();
  if (pre.length > 0) {
    const program = cmd[0] ?? "";
    if (program.includes("/")) {
      try {
        accessSync(program, constants.X_OK);
      } catch (err) {
        throw spawnError(
          (err as { code?: string }).code === "ENOENT" ? "ENOENT" : "EACCES",
          program,
        );
      }
    } else {
      const path = (opts.env as Record<string, string | undefined> | undefined)?.PATH;
      if (Bun.which(program, { PATH: path ?? environment.path() ?? "" }) === null) {
        throw spawnError("ENOENT", program);
      }
    }
  }
  return Bun.spawn([...pre, ...cmd], opts);
}
