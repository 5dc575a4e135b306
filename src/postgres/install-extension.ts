// Making an extension present at a version in one database (POST /extensions): nothing when it
// already is, ALTER … UPDATE TO when another version is installed, CREATE … WITH SCHEMA public
// otherwise.
import { pgQuote } from "../spec/quote.ts";
import { localClient } from "./client.ts";
import { stepFailed } from "./errors.ts";

const INSTALLED_VERSION =
  "SELECT extversion FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) $1";

/**
 * The reference's install_extension; returns the version now installed. The version is quoted as
 * an identifier, as the reference does (Postgres accepts either form there). Errors read
 * `<what failed>: <cause>`, where the reference stops at `<what failed>`.
 */
export async function installExtension(
  connstr: URL,
  req: { extension: string; database: string; version: string },
): Promise<string> {
  const sql = localClient(connstr, {
    applicationName: "compute_ctl:install_extension",
    database: req.database,
  });
  try {
    const rows = await sql
      .unsafe<{ extversion: string }[]>(INSTALLED_VERSION, [req.extension])
      .catch(stepFailed(`Failed to execute query: ${INSTALLED_VERSION}`));
    const installed = rows[0]?.extversion;
    if (installed === req.version) return installed;
    const ext = pgQuote(req.extension);
    const version = pgQuote(req.version);
    const statement =
      installed === undefined
        ? `CREATE EXTENSION IF NOT EXISTS ${ext} WITH SCHEMA public VERSION ${version}`
        : `ALTER EXTENSION ${ext} UPDATE TO ${version}`;
    await sql
      .unsafe(statement)
      .simple()
      .catch(stepFailed(`Failed to execute query: ${statement}`));
    return req.version;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
