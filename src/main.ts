#!/usr/bin/env bun
// compute_ctl's entry. The signal handlers come first, then the program is loaded with a dynamic
// import, so a SIGINT/SIGTERM/SIGQUIT at any moment after the first statement exits with code 1
// (static imports would all be evaluated before this module's body).
import { installEarlySignalExit } from "./util/early-signals.ts";

installEarlySignalExit();
const { main } = await import("./command.ts");
process.exit(await main(process.argv.slice(2)));
