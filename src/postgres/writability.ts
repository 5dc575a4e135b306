// The writability check of POST /check_writability: prove the timeline takes writes by upserting
// the one row of public.health_check (created by the spec apply's CreateAvailabilityCheck phase).
import { log } from "../log.ts";
import { localClient } from "./client.ts";
import { postgresErrorText } from "./errors.ts";

const UPSERT =
  "INSERT INTO public.health_check VALUES (1, pg_catalog.now()) " +
  "ON CONFLICT (id) DO UPDATE SET updated_at = pg_catalog.now()";

/** SQLSTATE disk_full: the tenant is out of space, which does not make the compute unwritable. */
const DISK_FULL = "53100";

/** The reference's checker: throws with the tokio-postgres-style text on any other failure. */
export async function checkWritability(connstr: URL): Promise<void> {
  const sql = localClient(connstr, { applicationName: "compute_ctl:availability_checker" });
  try {
    // One statement in the simple protocol, as the reference sends it; its one CommandComplete
    // is all the reference checks for, so the row count is not looked at.
    await sql.unsafe(UPSERT).simple();
  } catch (err) {
    if ((err as { code?: unknown }).code === DISK_FULL) {
      log.warn("Tenant disk is full");
      return;
    }
    throw new Error(postgresErrorText(err), { cause: err });
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
