// Granting privileges on a schema to a role in one database (POST /grants). Privileges the role
// already holds are skipped, so a repeated request writes nothing and also succeeds on a read
// replica.
import type { Privilege } from "../api/requests.ts";
import { pgQuote } from "../spec/quote.ts";
import { localClient } from "./client.ts";
import { stepFailed } from "./errors.ts";

// pg_user, as the reference: only login roles are found, so a NOLOGIN role is always granted to.
const HELD_PRIVILEGES =
  "SELECT acl.privilege_type FROM pg_catalog.pg_namespace" +
  " JOIN LATERAL (SELECT * FROM pg_catalog.aclexplode(nspacl) AS x) AS acl ON true" +
  " JOIN pg_catalog.pg_user users ON acl.grantee OPERATOR(pg_catalog.=) users.usesysid" +
  " WHERE users.usename OPERATOR(pg_catalog.=) $1::pg_catalog.name" +
  " AND nspname OPERATOR(pg_catalog.=) $2::pg_catalog.name";

/**
 * The reference's set_role_grants. Errors read `<what failed>: <cause>`; the reference stops at
 * `<what failed>` (anyhow's Display), which hides the Postgres error.
 */
export async function setRoleGrants(
  connstr: URL,
  req: { database: string; schema: string; privileges: readonly Privilege[]; role: string },
): Promise<void> {
  const sql = localClient(connstr, {
    applicationName: "compute_ctl:set_role_grants",
    database: req.database,
  });
  try {
    const rows = await sql
      .unsafe<{ privilege_type: string }[]>(HELD_PRIVILEGES, [req.role, req.schema])
      .catch(stepFailed(`Failed to execute query: ${HELD_PRIVILEGES}`));
    const held = new Set(rows.map((r) => r.privilege_type));
    // Enum members only, so they go into the statement verbatim; names are quoted.
    const missing = req.privileges.filter((p) => !held.has(p));
    if (missing.length === 0) return;
    const grant = `GRANT ${missing.join(", ")} ON SCHEMA ${pgQuote(req.schema)} TO ${pgQuote(req.role)}`;
    await sql
      .unsafe(grant)
      .simple()
      .catch(stepFailed(`Failed to execute query: ${grant}`));
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
