// The query insights of GET /insights: the top 100 pg_stat_statements entries by mean time, of
// other users than cloud_admin.
import { log } from "../log.ts";
import { localClient } from "./client.ts";
import { isConnectError, postgresErrorText } from "./errors.ts";

// ::text keeps Postgres's own JSON text: parsing and re-serialising would round 64-bit queryids.
const TOP_STATEMENTS =
  "SELECT pg_catalog.row_to_json(pss)::pg_catalog.text AS row FROM public.pg_stat_statements pss" +
  " WHERE pss.userid OPERATOR(pg_catalog.!=) 'cloud_admin'::pg_catalog.regrole::pg_catalog.oid" +
  " ORDER BY (pss.mean_exec_time OPERATOR(pg_catalog.+) pss.mean_plan_time) DESC LIMIT 100";

/**
 * The insights text. A failed query (no pg_stat_statements) gives an empty list; the reference
 * writes that one with doubled braces (a format-string slip), fixed here so it is JSON. A failed
 * connect throws (the reference panics and drops the connection).
 */
export async function collectInsights(connstr: URL): Promise<string> {
  const sql = localClient(connstr, { applicationName: "compute_ctl:collect_insights" });
  try {
    const rows = await sql.unsafe<{ row: string }[]>(TOP_STATEMENTS).simple();
    return `{"pg_stat_statements": [${rows.map((r) => r.row).join(",")}]}`;
  } catch (err) {
    if (isConnectError(err)) throw err;
    log.warn(`collecting insights failed: ${postgresErrorText(err)}`);
    return `{"pg_stat_statements": []}`;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
