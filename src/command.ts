// compute_ctl: boots a stateless Postgres compute from Neon storage and serves its HTTP API.
// Exit codes: 2 for usage errors, 1 for configuration errors, failed starts and signals,
// otherwise Postgres's own exit code. Everything past the command line is imported lazily, so
// --help and --version answer without loading the HTTP, schema and JWT libraries.
import { helpHint, parseCli, parseSpecPlanCli, parseVmMonitorCli } from "./cli.ts";
import { ConfigError, UsageError } from "./errors.ts";
import { environment } from "./testing-knobs.ts";
import { writeStderr, writeStdout } from "./util/stdio.ts";

export async function main(argv: string[]): Promise<number> {
  // `compute_ctl spec plan …` (the dry run) has its own flags; checked before the normal parse.
  if (argv[0] === "spec") return specPlanMain(argv.slice(1));
  // `compute_ctl vm-monitor …`: the vm-monitor alone (the reference's `vm-monitor` binary).
  if (argv[0] === "vm-monitor") return vmMonitorMain(argv.slice(1));
  let parsed: ReturnType<typeof parseCli>;
  try {
    parsed = parseCli(argv, environment.all());
  } catch (err) {
    // Usage errors exit 2 (as clap does); a flag value that is well-formed but unusable, such
    // as a connstr that is not a URL, is a configuration error and exits 1.
    if (err instanceof UsageError) {
      await writeStderr(`error: ${err.message}; ${helpHint()}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      await writeStderr(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (parsed.kind !== "run") {
    await writeStdout(parsed.text.endsWith("\n") ? parsed.text : `${parsed.text}\n`);
    return 0;
  }
  const parsedAt = performance.now();
  const { run } = await import("./run.ts");
  return run(parsed.params, { parsedAt });
}

async function specPlanMain(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseSpecPlanCli>;
  try {
    parsed = parseSpecPlanCli(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      await writeStderr(`error: ${err.message}; ${helpHint("compute_ctl spec plan")}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      await writeStderr(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (parsed.kind === "help") {
    await writeStdout(`${parsed.text}\n`);
    return 0;
  }
  const { specMain } = await import("./spec/plan-cli.ts");
  return specMain(parsed.params);
}

async function vmMonitorMain(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseVmMonitorCli>;
  try {
    parsed = parseVmMonitorCli(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      await writeStderr(`error: ${err.message}; ${helpHint("compute_ctl vm-monitor")}\n`);
      return 2;
    }
    throw err;
  }
  if (parsed.kind === "help") {
    await writeStdout(`${parsed.text}\n`);
    return 0;
  }
  const { configureLogging, parseLevelFilter } = await import("./log.ts");
  // As the reference's vm-monitor binary: JSON lines, the level from RUST_LOG.
  configureLogging({ level: parseLevelFilter(environment.rustLog()), format: "json" });
  const { runStandalone } = await import("./vm-monitor/standalone.ts");
  try {
    return await runStandalone(parsed.params);
  } catch (err) {
    if (err instanceof ConfigError) {
      await writeStderr(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
