// Whether Postgres accepts the configuration files as they are now on disk. pg_file_settings
// parses postgresql.conf (and what it includes) afresh on every query, so it answers before a
// reload: a file Postgres would reject, wholly or in part, is found before it is applied.
import { formatOneLine } from "../errors.ts";
import { localClient } from "./client.ts";

interface FileSettingError {
  sourcefile: string | null;
  sourceline: number | null;
  name: string | null;
  error: string;
}

function describe(e: FileSettingError): string {
  const where = e.sourcefile ? `${e.sourcefile}:${e.sourceline ?? "?"}` : "configuration file";
  return e.name ? `${where}: ${e.name}: ${e.error}` : `${where}: ${e.error}`;
}

/**
 * The problems Postgres finds in its configuration files, one line each (empty when none). A
 * change of a restart-only setting is not a problem: Postgres keeps the old value until the next
 * start, without an error.
 */
export async function configFileErrors(connstr: URL): Promise<string[]> {
  const sql = localClient(connstr, { applicationName: "compute_ctl:check_config" });
  try {
    // A changed restart-only setting reads "setting could not be applied", as an invalid value
    // does (only the setting's context tells them apart), and may add a row of its own without
    // a name: "parameter "x" cannot be changed without restarting the server".
    const rows = await sql<FileSettingError[]>`
      SELECT f.sourcefile, f.sourceline, f.name, f.error
      FROM pg_catalog.pg_file_settings f
      LEFT JOIN pg_catalog.pg_settings s ON s.name = f.name
      WHERE f.error IS NOT NULL
        AND NOT (s.context = 'postmaster' AND f.error = 'setting could not be applied')
        AND f.error NOT LIKE 'parameter "%" cannot be changed without restarting the server'
      ORDER BY f.seqno`;
    return rows.map(describe);
  } catch (err) {
    throw new Error(`could not read pg_file_settings: ${formatOneLine(err)}`, { cause: err });
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
