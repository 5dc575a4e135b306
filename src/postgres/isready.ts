// `pg_isready -p <port>`: whether the local Postgres accepts connections. No host is given, so
// pg_isready takes PGHOST from the environment or else its compiled-in socket directory, exactly
// as the reference runs it. Its one line of output goes to compute_ctl's stdout, as there.

/** Resolves when pg_isready exits 0; rejects with the reference's error text otherwise. */
export async function pgIsready(bin: string, port: number): Promise<void> {
  const what = `could not run \`${bin} --port ${port}\``;
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn([bin, "-p", String(port)], {
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
    });
  } catch (err) {
    throw new Error(what, { cause: new Error("spawn() failed", { cause: err }) });
  }
  const code = await proc.exited;
  if (code !== 0) {
    const status = proc.signalCode !== null ? `signal: ${proc.signalCode}` : `exit status: ${code}`;
    throw new Error(what, { cause: new Error(`process exited with ${status}`) });
  }
}
