// The RUST_LOG filter, apart from log.ts: the command line reads it (`--log-level`'s fallback),
// and loading log.ts (its stderr sink, node:fs) just to answer `--version` would double that run.
import type { LogLevelName } from "../log.ts";

const LEVEL_NAMES: ReadonlySet<string> = new Set<LogLevelName>([
  "off",
  "error",
  "warn",
  "info",
  "debug",
  "trace",
]);

/**
 * Parses a RUST_LOG-style filter: comma-separated directives, a bare level is the default, and
 * `compute_ctl=<level>` (our crate's name upstream) wins over it. Unknown text falls back to info.
 */
export function parseLevelFilter(filter: string | undefined): LogLevelName {
  if (!filter) return "info";
  let fallback: LogLevelName | undefined;
  for (const raw of filter.split(",")) {
    const d = raw.trim().toLowerCase();
    const eq = d.indexOf("=");
    if (eq === -1) {
      if (LEVEL_NAMES.has(d)) fallback = d as LogLevelName;
    } else if (d.slice(0, eq) === "compute_ctl") {
      const lvl = d.slice(eq + 1);
      if (LEVEL_NAMES.has(lvl)) return lvl as LogLevelName;
    }
  }
  return fallback ?? "info";
}
