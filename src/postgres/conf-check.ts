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
    const rows = await sql<FileSettingError[]>`
      SELECT sourcefile, sourceline, name, error
      FROM pg_catalog.pg_file_settings
      WHERE error IS NOT NULL
      ORDER BY seqno`;
    return rows.map(describe);
  } catch (err) {
    throw new Error(`could not read pg_file_settings: ${formatOneLine(err)}`, { cause: err });
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
