// Error types that decide the exit code, and the rendering of cause chains. Errors are thrown
// with `cause`; the chain is rendered once, at the edge (the /status `error` field, the exit
// log line).

/** A command-line usage error: exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A configuration error (bad file, bad spec, unusable --pgbin, control plane refused): exit 1. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * The messages of an error and its causes, outermost first. Non-Error causes are stringified.
 * A cause whose message the link before it already contains is left out: errors built as
 * `new Error(\`context: ${cause.message}\`, { cause })` (ours or a library's) would otherwise
 * say the same thing twice.
 */
export function errorChain(err: unknown): string[] {
  const out: string[] = [];
  const seen = new Set<unknown>();
  let cur: unknown = err;
  while (cur !== undefined && cur !== null && !seen.has(cur)) {
    seen.add(cur);
    const message = cur instanceof Error ? cur.message : String(cur);
    const previous = out[out.length - 1];
    if (previous === undefined || message === "" || !previous.includes(message)) {
      out.push(message);
    }
    if (!(cur instanceof Error)) break;
    cur = cur.cause;
  }
  return out;
}

/** One line: `outer: middle: inner` (anyhow's `{:#}`). */
export function formatOneLine(err: unknown): string {
  return errorChain(err).join(": ");
}

/**
 * The multi-line form the reference puts in `/status.error` (anyhow's `{:?}`):
 * `outer\n\nCaused by:\n    0: middle\n    1: inner`.
 */
export function formatChain(err: unknown): string {
  const [head = "unknown error", ...causes] = errorChain(err);
  if (causes.length === 0) return head;
  return `${head}\n\nCaused by:\n${causes.map((c, i) => `    ${i}: ${c}`).join("\n")}`;
}

/** Wraps `cause` in a new error with `message` as context (anyhow's `.context()`). */
export function withContext(message: string, cause: unknown): Error {
  return new Error(message, { cause });
}

// Rust's io::Error Display for the errno values a local connect, spawn or file access can meet.
const OS_ERROR_TEXTS: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EEXIST: "File exists",
  ENAMETOOLONG: "File name too long",
  ENOTSOCK: "Socket operation on non-socket",
  ECONNREFUSED: "Connection refused",
  ECONNRESET: "Connection reset by peer",
  ETIMEDOUT: "Connection timed out",
  EHOSTUNREACH: "No route to host",
  ENETUNREACH: "Network is unreachable",
  EPIPE: "Broken pipe",
  ENOTDIR: "Not a directory",
};

/** `Connection refused (os error 111)` for an error with `code: "ECONNREFUSED"`; null if unknown. */
export function osErrorText(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return null;
  // node:os is loaded here, not with this module: the command line's errors need none of it.
  const { constants } = require("node:os") as typeof import("node:os");
  const errno = (constants.errno as Record<string, number>)[code];
  const text = OS_ERROR_TEXTS[code];
  if (errno === undefined || text === undefined) return null;
  return `${text} (os error ${errno})`;
}
