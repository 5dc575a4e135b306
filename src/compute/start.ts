// The start path: PGDATA, safekeepers, basebackup, Postgres, configuration. It belongs to the
// start-path issue; until then it refuses, so nothing can report `running` without a Postgres.
import type { ParsedSpec } from "../api/parsed-spec.ts";

export async function startCompute(_pspec: ParsedSpec): Promise<void> {
  throw new Error("start path not implemented");
}

/** Reconfiguring a running compute belongs to the spec issue; it refuses until then. */
export async function reconfigureCompute(_pspec: ParsedSpec): Promise<void> {
  throw new Error("reconfigure not implemented");
}
