// `compute_ctl spec plan`: the dry run. Reads the catalog of the Postgres at --connstr, plans the
// spec with the same planner as the apply, and prints the statements as a psql script; nothing
// else runs there. Exit 0 with the plan on stdout, 2 on a usage error, 1 when the spec cannot be
// read or Postgres cannot be reached — each error as one line on stderr.
import { parseSpec } from "../api/parsed-spec.ts";
import type { ComputeSpec } from "../api/spec.ts";
import { loadConfigFile } from "../config/load.ts";
import { ConfigError, formatOneLine } from "../errors.ts";
import { configureLogging } from "../log.ts";
import { planSpecSql } from "./apply.ts";

/** What `compute_ctl spec plan` was given (the command line is parsed by cli.ts). */
export interface PlanArgs {
  connstr: URL;
  specPath: string | null;
  configPath: string | null;
  privilegedRoleName: string;
}

/** The spec from -c (a ComputeConfig) or -S (a bare spec or a ComputeConfig), as compute_ctl reads them. */
async function readSpec(args: PlanArgs): Promise<ComputeSpec> {
  const loaded = args.configPath
    ? await loadConfigFile(args.configPath, "--config")
    : await loadConfigFile(args.specPath!, "--spec-path");
  if (loaded.kind === "spec") return loaded.spec;
  if (!loaded.config.spec) {
    const flag = args.configPath ? "--config" : "--spec-path";
    throw new ConfigError(`invalid ${flag} file ${args.configPath ?? args.specPath}`, {
      cause: new Error("the configuration has no spec"),
    });
  }
  return loaded.config.spec;
}

/** Runs `compute_ctl spec plan` with its parsed arguments; returns the exit code. */
export async function specMain(args: PlanArgs): Promise<number> {
  // stdout is the script and stderr holds one line on failure: the apply's own logging stays quiet.
  configureLogging({ level: "error" });
  try {
    const spec = await readSpec(args);
    // Validated like a spec compute_ctl would start from; the timeline keys the subscription marker.
    let timelineId: string;
    try {
      timelineId = parseSpec(spec).timelineId;
    } catch (err) {
      throw new ConfigError("invalid compute spec", { cause: err });
    }
    const { text } = await planSpecSql(spec, {
      connstr: args.connstr,
      privilegedRoleName: args.privilegedRoleName,
      timelineId,
    }).catch((err) => {
      throw new Error(`cannot plan against ${redact(args.connstr)}`, { cause: err });
    });
    process.stdout.write(text);
    return 0;
  } catch (err) {
    process.stderr.write(`error: ${formatOneLine(err).replaceAll("\n", " ")}\n`);
    return 1;
  }
}

/** The connstr without its password, for error messages. */
function redact(url: URL): string {
  const u = new URL(url.href);
  if (u.password) u.password = "***";
  return u.href;
}
