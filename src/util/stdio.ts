// Writes whole texts to stdout/stderr through Bun's file writer. process.stdout/process.stderr
// are Node streams whose first use loads and sets up the stream machinery, which costs more than
// the rest of a `--version` run; the short answers of the command line go out this way instead.

async function writeFd(file: Bun.BunFile, text: string): Promise<void> {
  try {
    await Bun.write(file, text);
  } catch {
    // A closed pipe (`compute_ctl --help | head -1`): the reader is gone, nothing to report to.
  }
}

/** Writes `text` to stdout (fd 1), resolving when it has been handed to the kernel. */
export function writeStdout(text: string): Promise<void> {
  return writeFd(Bun.stdout, text);
}

/** Writes `text` to stderr (fd 2), resolving when it has been handed to the kernel. */
export function writeStderr(text: string): Promise<void> {
  return writeFd(Bun.stderr, text);
}
