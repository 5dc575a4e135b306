// Small edits to files in PGDATA, with the reference's exact byte-level behaviour
// (config::line_in_file, config::with_compute_ctl_tmp_override).
import { open } from "node:fs/promises";
import { join } from "node:path";

/** Included last by postgresql.conf; holds temporary overrides during catalog updates. */
export const TMP_OVERRIDE_FILE = "compute_ctl_temp_override.conf";

/** The line compute_ctl adds to pg_hba.conf (tabs exactly as the reference writes them). */
export const PG_HBA_MD5_LINE = "host\tall\t\tall\t\tall\t\tmd5";

/** The lines of a file as Rust's `BufRead::lines` yields them ("\n" or "\r\n" removed). */
function rustLines(text: string): string[] {
  if (text === "") return [];
  const parts = text.split("\n");
  // A final "\n" ends the last line rather than starting an empty one.
  if (parts[parts.length - 1] === "") parts.pop();
  return parts.map((p, i) =>
    i < parts.length - 1 || text.endsWith("\n") ? p.replace(/\r$/, "") : p,
  );
}

/**
 * Makes sure `line` is a line of the file at `path`, creating the file if needed. Returns false
 * when an identical line is already there; otherwise appends it (after a "\n" unless the file is
 * empty, and with NO trailing newline) and returns true.
 */
export async function lineInFile(path: string, line: string): Promise<boolean> {
  // a+: read the whole file, create it if missing, and append at the end whatever the position.
  const fh = await open(path, "a+");
  try {
    const bytes = await fh.readFile();
    // Non-UTF-8 content is an error in the reference too (`lines()` fails).
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    const lines = rustLines(text);
    if (lines.includes(line)) return false;
    await fh.write(lines.length > 0 ? `\n${line}` : line);
    return true;
  } finally {
    await fh.close();
  }
}

/**
 * Runs `f` with `options` written (without a newline) to `<pgdata>/compute_ctl_temp_override.conf`,
 * then truncates that file to zero length whether `f` succeeded or threw. The file is never
 * deleted: postgresql.conf includes it with include_if_exists, and an empty file is a no-op.
 */
export async function withTmpOverride<T>(
  pgdata: string,
  options: string,
  f: () => Promise<T>,
): Promise<T> {
  const fh = await open(join(pgdata, TMP_OVERRIDE_FILE), "w");
  try {
    await fh.write(options);
    try {
      return await f();
    } finally {
      await fh.truncate(0);
    }
  } finally {
    await fh.close();
  }
}
