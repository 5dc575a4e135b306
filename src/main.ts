#!/usr/bin/env bun
// compute_ctl's entry. The signal handlers come first, then the program is loaded with a dynamic
// import, so a SIGINT/SIGTERM/SIGQUIT at any moment after the first statement exits with code 1
// (static imports would all be evaluated before this module's body).
//
// A child process compute_ctl starts from its own executable to do one job (the basebackup) gets
// no arguments and COMPUTE_CTL_INTERNAL_ROLE; it loads only that job's modules. Any run with
// arguments (`--version` included) does not look at the environment here.
import { installEarlySignalExit } from "./util/early-signals.ts";

if (process.argv.length <= 2) {
  const { environment } = await import("./testing-knobs.ts");
  if (environment.internalRole() === "basebackup") {
    const { runBasebackupWorker } = await import("./storage/basebackup-worker.ts");
    process.exit(await runBasebackupWorker());
  }
}
installEarlySignalExit();
const { main } = await import("./command.ts");
process.exit(await main(process.argv.slice(2)));
