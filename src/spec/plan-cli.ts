// `compute_ctl spec plan`: the dry run. Reads the catalog of the Postgres at --connstr, plans the
// spec with the same planner as the apply, and prints the statements as a psql script; nothing
// else runs there. Exit 0 with the plan on stdout, 2 on a usage error, 1 when the spec cannot be
// read or Postgres cannot be reached — each error as one line on stderr.
import { ComputeConfig } from "../api/config.ts";
import { parseJson } from "../api/decode.ts";
import { parseSpec } from "../api/parsed-spec.ts";
import { ComputeSpec } from "../api/spec.ts";
import { ConfigError, formatOneLine, UsageError } from "../errors.ts";
import { configureLogging } from "../log.ts";
import { closestName } from "../util/suggest.ts";
import { planSpecSql } from "./apply.ts";

export const SPEC_PLAN_USAGE =
  "Usage: compute_ctl spec plan --connstr <URL> (-S <SPEC_FILE> | -c <CONFIG_FILE>) [--privileged-role-name <NAME>]";

interface PlanArgs {
  connstr: URL;
  specPath: string | null;
  configPath: string | null;
  privilegedRoleName: string;
}

const FLAGS: Record<string, "connstr" | "specPath" | "configPath" | "privilegedRoleName"> = {
  "--connstr": "connstr",
  "-C": "connstr",
  "--spec-path": "specPath",
  "-S": "specPath",
  "--config": "configPath",
  "-c": "configPath",
  "--privileged-role-name": "privilegedRoleName",
};

/** `plan …` after `spec`; throws UsageError (exit 2) or ConfigError (exit 1). */
export function parsePlanArgs(argv: string[]): PlanArgs | "help" {
  const [sub, ...rest] = argv;
  if (sub === "--help" || sub === "-h" || sub === "help") return "help";
  if (sub !== "plan") {
    throw new UsageError(
      sub === undefined
        ? "missing subcommand for 'spec': expected 'plan'"
        : `unknown subcommand 'spec ${sub}': expected 'plan'`,
    );
  }
  const values: Partial<
    Record<"connstr" | "specPath" | "configPath" | "privilegedRoleName", string>
  > = {};
  for (let i = 0; i < rest.length; i++) {
    const token = rest[i]!;
    if (token === "--help" || token === "-h") return "help";
    const eq = token.startsWith("--") ? token.indexOf("=") : -1;
    const flag = eq > 0 ? token.slice(0, eq) : token;
    const key = FLAGS[flag];
    if (!key) {
      const longs = Object.keys(FLAGS).filter((f) => f.startsWith("--"));
      const near = flag.startsWith("--")
        ? closestName(
            flag.slice(2),
            longs.map((f) => f.slice(2)),
          )
        : undefined;
      const tip = near === undefined ? "" : ` (did you mean '--${near}'?)`;
      throw new UsageError(`unexpected argument '${token}' found${tip}`);
    }
    let value: string | undefined;
    if (eq > 0) value = token.slice(eq + 1);
    else value = rest[++i];
    if (value === undefined) throw new UsageError(`a value is required for '${flag}'`);
    if (values[key] !== undefined) {
      throw new UsageError(`the argument '${flag}' cannot be used multiple times`);
    }
    values[key] = value;
  }
  if (values.connstr === undefined) throw new UsageError("the argument '--connstr' is required");
  if ((values.specPath === undefined) === (values.configPath === undefined)) {
    throw new UsageError("exactly one of '--spec-path' and '--config' is required");
  }
  const priv = values.privilegedRoleName ?? "neon_superuser";
  if (!/^[a-z_]+$/.test(priv)) {
    throw new UsageError(
      `invalid value '${priv}' for '--privileged-role-name': only lowercase letters and '_'`,
    );
  }
  let connstr: URL;
  try {
    connstr = new URL(values.connstr);
  } catch {
    throw new ConfigError(`invalid value '${values.connstr}' for '--connstr': not a URL`);
  }
  return {
    connstr,
    specPath: values.specPath ?? null,
    configPath: values.configPath ?? null,
    privilegedRoleName: priv,
  };
}

/** The spec from -c (a ComputeConfig) or -S (a bare spec or a ComputeConfig), as compute_ctl reads them. */
async function readSpec(args: PlanArgs): Promise<ComputeSpec> {
  const path = (args.configPath ?? args.specPath)!;
  const flag = args.configPath ? "--config" : "--spec-path";
  let text: string;
  try {
    text = await Bun.file(path).text();
  } catch (err) {
    throw new ConfigError(`cannot read ${flag} file ${path}`, { cause: err });
  }
  try {
    let asConfig = args.configPath !== null;
    if (!asConfig) {
      try {
        const doc: unknown = JSON.parse(text);
        asConfig = typeof doc === "object" && doc !== null && "compute_ctl_config" in doc;
      } catch {
        // parseJson reports the syntax error below.
      }
    }
    if (!asConfig) return parseJson(ComputeSpec, text);
    const config = parseJson(ComputeConfig, text);
    if (!config.spec) throw new Error("the configuration has no spec");
    return config.spec;
  } catch (err) {
    throw new ConfigError(`invalid ${flag} file ${path}`, { cause: err });
  }
}

/** Runs `compute_ctl spec …`; returns the exit code. */
export async function specMain(argv: string[]): Promise<number> {
  let args: PlanArgs | "help";
  try {
    args = parsePlanArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}; see 'compute_ctl spec plan --help'\n`);
      return 2;
    }
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return 1;
  }
  if (args === "help") {
    process.stdout.write(
      `Print the statements that applying the spec would run against a Postgres, without running them.\n\n${SPEC_PLAN_USAGE}\n`,
    );
    return 0;
  }
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
