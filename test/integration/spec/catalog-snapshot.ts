// The catalog facts a spec apply decides, as sorted text lines: roles with their attributes and
// stored passwords, memberships, databases with owners and ACLs, extensions, relations in public
// and neon, and the default ACLs of one database. Two clusters brought to the same state by
// different routes (the apply, the dry-run script through psql) must give equal snapshots.
import type { TestPostgres } from "../../support/pg.ts";

export async function catalogSnapshot(t: TestPostgres, database: string): Promise<string[]> {
  const rows = await t.sql`
    SELECT 'role ' || r.rolname || ' ' || r.rolcreatedb || r.rolcreaterole || r.rolbypassrls || r.rolreplication || r.rolcanlogin || ' ' || coalesce(a.rolpassword, '-') AS x FROM pg_roles r JOIN pg_authid a USING (oid)
    UNION ALL SELECT 'member ' || pg_get_userbyid(roleid) || ' ' || pg_get_userbyid(member) FROM pg_auth_members
    UNION ALL SELECT 'db ' || datname || ' ' || pg_get_userbyid(datdba) || ' ' || coalesce(datacl::text, '') FROM pg_database
    UNION ALL SELECT 'ext ' || extname FROM pg_extension
    UNION ALL SELECT 'rel ' || oid::regclass::text FROM pg_class WHERE relnamespace IN ('public'::regnamespace, 'neon'::regnamespace)
    ORDER BY 1`;
  const perDb = t.connect({ database });
  try {
    const acl =
      await perDb`SELECT defaclobjtype::text || ' ' || defaclacl::text AS x FROM pg_default_acl ORDER BY 1`;
    return [...rows.map((r) => r.x), ...acl.map((r) => r.x)];
  } finally {
    await perDb.end({ timeout: 1 });
  }
}
