// The one loader for configuration files: --config (a ComputeConfig) and --spec-path (a bare
// ComputeSpec, or a ComputeConfig recognised by its `compute_ctl_config` key). Used by the run
// and by `spec plan`, with the same error wording.
import { ComputeConfig } from "../api/config.ts";
import { parseJson } from "../api/decode.ts";
import { ComputeSpec } from "../api/spec.ts";
import { ConfigError } from "../errors.ts";

export type ConfigFileFlag = "--config" | "--spec-path";

export type LoadedConfigFile =
  | { kind: "config"; config: ComputeConfig }
  | { kind: "spec"; spec: ComputeSpec };

/**
 * Reads and decodes the file named by `flag`. Throws ConfigError `cannot read <flag> file <path>`
 * or `invalid <flag> file <path>` (the decoding error as its cause).
 */
export async function loadConfigFile(
  path: string,
  flag: ConfigFileFlag,
): Promise<LoadedConfigFile> {
  let text: string;
  try {
    text = await Bun.file(path).text();
  } catch (err) {
    throw new ConfigError(`cannot read ${flag} file ${path}`, { cause: err });
  }
  try {
    if (flag === "--config" || isComputeConfig(text)) {
      return { kind: "config", config: parseJson(ComputeConfig, text) };
    }
    return { kind: "spec", spec: parseJson(ComputeSpec, text) };
  } catch (err) {
    throw new ConfigError(`invalid ${flag} file ${path}`, { cause: err });
  }
}

function isComputeConfig(text: string): boolean {
  try {
    const doc: unknown = JSON.parse(text);
    return typeof doc === "object" && doc !== null && "compute_ctl_config" in doc;
  } catch {
    // parseJson reports the syntax error with its position.
    return false;
  }
}
