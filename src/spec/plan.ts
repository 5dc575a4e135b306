// The planner: a pure function from (catalog snapshot, spec, options) to the statements that
// bring the catalog in line with the spec, grouped into the reference's phases and
// by the database they run in. Nothing here touches Postgres, so the plan can be printed (dry
// run) or unit-tested, and the executor only runs what it is given.
import type { ComputeSpec, Database, DeltaOp } from "../api/spec.ts";
import type {
  CatalogDatabase,
  CatalogRole,
  CatalogSnapshot,
  PublicSchemaState,
} from "./catalog.ts";
import { databaseOptions, pgQuote, roleOptions, storedPassword } from "./quote.ts";
import * as q from "./sql.ts";

export interface Statement {
  sql: string;
  /** Why it runs, for logs and the printed plan. */
  comment?: string;
}

export interface Phase {
  name: string;
  statements: Statement[];
}

/** Work inside one database; `database: null` is the system database (the connstr's). */
export interface DatabaseTask {
  database: string | null;
  phases: Phase[];
  /**
   * For a database this plan creates: the main statement that completes its creation. The task
   * may start once that statement has succeeded, while later main statements still run; without
   * it the task starts after the main phases.
   */
  startsAfter?: Statement;
}

export interface Plan {
  /** Subscriptions detached in databases about to be dropped; "does not exist" is tolerated. */
  preDrop: DatabaseTask[];
  /** On the main connection, before the per-database work. */
  main: Phase[];
  /** One task per database, run in parallel up to the concurrency limit. */
  perDatabase: DatabaseTask[];
  /** On the main connection, after the per-database work. */
  final: Phase[];
  /** What was skipped and why (logged as warnings by the executor). */
  warnings: string[];
}

export interface PlanOptions {
  /** `--privileged-role-name`, `^[a-z_]+$`. */
  privilegedRoleName: string;
  /** The timeline recorded in the drop-subscriptions marker (ParsedSpec.timelineId). */
  timelineId: string;
  /**
   * Lakebase mode: the privileged role has no REPLICATION, and the Databricks phases run
   * (roles after CreatePrivilegedRole; the auth extension after the neon one; grants and misc
   * objects after DropRoles).
   */
  lakebase?: boolean;
}

/** The mutable view of the catalog that phases update as they plan (the reference's context). */
interface Context {
  roles: Map<string, CatalogRole>;
  dbs: Map<string, CatalogDatabase>;
  /**
   * Names whose database is not the one the snapshot read (dropped, renamed away or onto, or
   * created by this plan), so the snapshot's per-database facts do not apply to them.
   */
  replaced: Set<string>;
}

const SYSTEM_DB_OWNER = "cloud_admin";

function phase(name: string, statements: Statement[]): Phase {
  return { name, statements };
}

function ops(spec: ComputeSpec, action: string): DeltaOp[] {
  return (spec.delta_operations ?? []).filter((op) => op.action === action);
}

function newName(op: DeltaOp): string {
  if (op.new_name === null)
    throw new Error(`delta operation ${op.action} '${op.name}' has no new_name`);
  return op.new_name;
}

function jwksRoles(spec: ComputeSpec): Set<string> {
  const names = new Set<string>();
  for (const jwks of spec.local_proxy_config?.jwks ?? []) {
    for (const r of jwks.role_names) names.add(r);
  }
  return names;
}

/** Why a per-database task cannot connect to `name`, or null when it can. */
function unreachable(ctx: Context, name: string): string | null {
  const db = ctx.dbs.get(name);
  if (!db) return "it does not exist";
  if (db.restrictConn || db.invalid) {
    return `it is not open to connections (restrict_conn=${db.restrictConn}, invalid=${db.invalid})`;
  }
  return null;
}

function dropInvalidDatabases(ctx: Context): Phase {
  const out: Statement[] = [];
  for (const db of [...ctx.dbs.values()]) {
    if (!db.invalid) continue;
    // Left by an interrupted DROP DATABASE; recreated below if the spec still has it.
    ctx.dbs.delete(db.name);
    ctx.replaced.add(db.name);
    out.push({
      sql: `DROP DATABASE IF EXISTS ${pgQuote(db.name)}`,
      comment: `dropping invalid database ${db.name}`,
    });
  }
  return phase("DropInvalidDatabases", out);
}

function renameRoles(ctx: Context, spec: ComputeSpec): Phase {
  const out: Statement[] = [];
  for (const op of ops(spec, "rename_role")) {
    const to = newName(op);
    const role = ctx.roles.get(op.name);
    // Rename only a role that exists (the reference's condition is inverted: see
    // docs/compatibility.md); a retried rename finds the old name gone and does nothing.
    if (!role) continue;
    ctx.roles.delete(op.name);
    // Postgres clears an MD5 password on rename (the name is its salt), so the next phase sees a
    // changed password and sets it again.
    const keeps = role.password?.startsWith("SCRAM-SHA-256") ?? false;
    ctx.roles.set(to, { name: to, password: keeps ? role.password : null });
    out.push({
      sql: `ALTER ROLE ${pgQuote(op.name)} RENAME TO ${pgQuote(to)}`,
      comment: `renaming role '${op.name}' to '${to}'`,
    });
  }
  return phase("RenameRoles", out);
}

function createAndAlterRoles(ctx: Context, spec: ComputeSpec, priv: string): Phase {
  const jwks = jwksRoles(spec);
  const out: Statement[] = [];
  for (const role of spec.cluster.roles) {
    const existing = ctx.roles.get(role.name);
    if (existing) {
      // Compared as stored, so md5 roles are not re-altered on every apply. Only LOGIN, the
      // options and the password are set here, never privileges: this runs on any role.
      if (existing.password !== storedPassword(role.encrypted_password)) {
        out.push({
          sql: `ALTER ROLE ${pgQuote(role.name)} ${roleOptions(role)}`,
          comment: `updating role ${role.name}`,
        });
      }
    } else if (jwks.has(role.name)) {
      // local_proxy's JWT roles get no privileges and no membership: a security boundary.
      out.push({
        sql: `CREATE ROLE ${pgQuote(role.name)} ${roleOptions(role)}`,
        comment: `creating role ${role.name}`,
      });
    } else {
      out.push({
        sql: `CREATE ROLE ${pgQuote(role.name)} INHERIT CREATEROLE CREATEDB BYPASSRLS REPLICATION IN ROLE ${priv} ${roleOptions(role)}`,
        comment: `creating role ${role.name}`,
      });
    }
  }
  return phase("CreateAndAlterRoles", out);
}

function renameAndDeleteDatabases(ctx: Context, spec: ComputeSpec): Phase {
  const out: Statement[] = [];
  for (const op of spec.delta_operations ?? []) {
    if (op.action === "delete_db") {
      // Unconditional: IF EXISTS makes a retry or an unknown name a no-op.
      out.push({
        sql: q.unsetTemplate(op.name),
        comment: `clearing the template flag of ${op.name}`,
      });
      out.push({
        sql: `DROP DATABASE IF EXISTS ${pgQuote(op.name)} WITH (FORCE)`,
        comment: `deleting database ${op.name}`,
      });
      ctx.dbs.delete(op.name);
      ctx.replaced.add(op.name);
    } else if (op.action === "rename_db") {
      const to = newName(op);
      const db = ctx.dbs.get(op.name);
      if (!db) continue;
      ctx.dbs.delete(op.name);
      ctx.dbs.set(to, { ...db, name: to });
      ctx.replaced.add(op.name);
      ctx.replaced.add(to);
      out.push({
        sql: `ALTER DATABASE ${pgQuote(op.name)} RENAME TO ${pgQuote(to)}`,
        comment: `renaming database '${op.name}' to '${to}'`,
      });
    }
  }
  return phase("RenameAndDeleteDatabases", out);
}

function createAndAlterDatabases(
  ctx: Context,
  spec: ComputeSpec,
  priv: string,
  created: Map<string, Statement>,
): Phase {
  const out: Statement[] = [];
  for (const db of spec.cluster.databases) {
    const existing = ctx.dbs.get(db.name);
    if (existing) {
      // Only the owner of an existing database is reconciled; its other options never are.
      if (existing.owner !== db.owner) {
        out.push({
          sql: `ALTER DATABASE ${pgQuote(db.name)} OWNER TO ${pgQuote(db.owner)}`,
          comment: `changing the owner of database ${db.name} to ${db.owner}`,
        });
        existing.owner = db.owner;
      }
      continue;
    }
    ctx.dbs.set(db.name, { name: db.name, owner: db.owner, restrictConn: false, invalid: false });
    ctx.replaced.add(db.name);
    out.push({
      sql: `CREATE DATABASE ${pgQuote(db.name)} ${databaseOptions(db)}`,
      comment: `creating database ${db.name}`,
    });
    // ALL = CREATE, CONNECT and TEMPORARY on the database.
    const grant = { sql: `GRANT ALL PRIVILEGES ON DATABASE ${pgQuote(db.name)} TO ${priv}` };
    out.push(grant);
    created.set(db.name, grant);
  }
  return phase("CreateAndAlterDatabases", out);
}

/** REASSIGN, revoke, DROP OWNED for each role being deleted, in one database. */
function deleteRoleReferences(ctx: Context, spec: ComputeSpec, db: Database | null): Phase {
  const out: Statement[] = [];
  for (const op of ops(spec, "delete_role")) {
    // The owner's objects are the database's; a role never created has nothing to clean up.
    if (db && db.owner === op.name) continue;
    if (!ctx.roles.has(op.name)) continue;
    const role = pgQuote(op.name);
    const heir = pgQuote(db ? db.owner : SYSTEM_DB_OWNER);
    out.push({ sql: `REASSIGN OWNED BY ${role} TO ${heir}` });
    out.push({ sql: q.revokeTablePrivileges(op.name) });
    out.push({ sql: `DROP OWNED BY ${role}` });
  }
  return phase("DeleteDBRoleReferences", out);
}

function dropSubscriptionsPhase(dbname: string): Phase {
  return phase("DropLogicalSubscriptions", [
    { sql: q.dropSubscriptions(dbname), comment: `dropping subscriptions of ${dbname}` },
  ]);
}

function changeSchemaPerms(owner: string, priv: string): Phase {
  return phase("ChangeSchemaPerms", [
    { sql: q.setPublicSchemaOwner(owner) },
    { sql: q.defaultGrants(priv) },
  ]);
}

const ADMIN_ROLES = new Set(["cloud_admin", "zenith_admin"]);

/**
 * Whether ChangeSchemaPerms would leave a public schema in state `s` as it is: no owner to hand
 * over, web_access already granted CREATE by the owner (where it is granted), and the default
 * privileges already complete. Running it then changes no catalog row's content.
 */
function schemaPermsInPlace(s: PublicSchemaState, webAccessExists: boolean): boolean {
  // Both statements do nothing without a public schema.
  if (!s.exists) return true;
  // A GRANT by a superuser is recorded as the owner's; a grant by anyone else is not checked.
  if (!s.superuser) return false;
  if (s.owner !== null && ADMIN_ROLES.has(s.owner)) return false;
  if (s.webAccessGrantApplies && webAccessExists && !s.webAccessCanCreate) return false;
  return s.defaultTablePrivileges && s.defaultSequencePrivileges;
}

/**
 * The databases whose public schema is worth reading before planning `spec`: those of the spec
 * that exist and that no delta operation renames or deletes, and none when a delta operation
 * renames or deletes an existing role (its REASSIGN OWNED, DROP OWNED and new names can change
 * what ChangeSchemaPerms finds, so the phase then runs everywhere).
 */
export function publicSchemasToRead(
  spec: ComputeSpec,
  snapshot: Pick<CatalogSnapshot, "roles" | "databases">,
): string[] {
  const deltas = spec.delta_operations ?? [];
  const roleOps = deltas.filter((op) => op.action === "rename_role" || op.action === "delete_role");
  if (roleOps.some((op) => snapshot.roles.has(op.name))) return [];
  const touched = new Set<string>();
  for (const op of deltas) {
    if (op.action !== "rename_db" && op.action !== "delete_db") continue;
    touched.add(op.name);
    if (op.new_name !== null) touched.add(op.new_name);
  }
  return spec.cluster.databases
    .map((d) => d.name)
    .filter((name) => snapshot.databases.has(name) && !touched.has(name));
}

function nonEmpty(phases: Phase[]): Phase[] {
  return phases.filter((p) => p.statements.length > 0);
}

/**
 * Plans one application of `spec` to a catalog in state `snapshot`. Roles and databases that the
 * spec does not mention are left alone; only delta operations delete or rename.
 */
export function planSpec(snapshot: CatalogSnapshot, spec: ComputeSpec, opts: PlanOptions): Plan {
  const priv = opts.privilegedRoleName;
  q.assertPrivilegedRoleName(priv);
  const ctx: Context = {
    roles: new Map([...snapshot.roles].map(([k, v]) => [k, { ...v }])),
    dbs: new Map([...snapshot.databases].map(([k, v]) => [k, { ...v }])),
    replaced: new Set(),
  };
  const warnings: string[] = [];
  const dropSubscriptions = spec.drop_subscriptions_before_start && !snapshot.dropSubscriptionsDone;

  const preDrop: DatabaseTask[] = [];
  for (const op of ops(spec, "delete_db")) {
    const why = unreachable(ctx, op.name);
    if (why) {
      warnings.push(`not dropping subscriptions in database ${op.name} before deleting it: ${why}`);
      continue;
    }
    preDrop.push({ database: op.name, phases: [dropSubscriptionsPhase(op.name)] });
  }

  const lakebase = opts.lakebase ?? false;
  const renamed = renameRoles(ctx, spec);
  const created = new Map<string, Statement>();
  const main = nonEmpty([
    phase("CreatePrivilegedRole", [{ sql: q.createPrivilegedRole(priv, lakebase) }]),
    ...(lakebase
      ? [
          phase(
            "CreateDatabricksRoles",
            q.createDatabricksRoles().map((sql) => ({ sql })),
          ),
          phase("AlterDatabricksRoles", [
            {
              sql: q.ALTER_DATABRICKS_READER_ROLES,
              comment: "Backfill existing databricks_reader_* roles with statement timeout",
            },
          ]),
        ]
      : []),
    dropInvalidDatabases(ctx),
    renamed,
    createAndAlterRoles(ctx, spec, priv),
    renameAndDeleteDatabases(ctx, spec),
    createAndAlterDatabases(ctx, spec, priv, created),
    phase("CreateSchemaNeon", [{ sql: q.CREATE_SCHEMA_NEON }]),
  ]);

  // Roles renamed or deleted by this plan may own, or hold privileges on, a public schema; the
  // per-database facts read before the plan are then not trusted anywhere.
  const rolesChange =
    renamed.statements.length > 0 || ops(spec, "delete_role").some((op) => ctx.roles.has(op.name));
  // Created roles are not added to ctx.roles; one the spec lists exists by the time this runs.
  const webAccessExists =
    ctx.roles.has("web_access") || spec.cluster.roles.some((r) => r.name === "web_access");
  const copiesFromTemplate = spec.cluster.databases.some((d) =>
    (d.options ?? []).some((o) => o.name.toUpperCase().includes("TEMPLATE")),
  );
  const perDatabase: DatabaseTask[] = [];
  for (const db of spec.cluster.databases) {
    const why = unreachable(ctx, db.name);
    if (why) {
      warnings.push(`skipping the per-database work in ${db.name}: ${why}`);
      continue;
    }
    const schema = snapshot.publicSchemas?.get(db.name);
    const permsInPlace =
      schema !== undefined &&
      !rolesChange &&
      !ctx.replaced.has(db.name) &&
      schemaPermsInPlace(schema, webAccessExists);
    const phases = nonEmpty([
      deleteRoleReferences(ctx, spec, db),
      ...(permsInPlace ? [] : [changeSchemaPerms(db.owner, priv)]),
      ...(dropSubscriptions ? [dropSubscriptionsPhase(db.name)] : []),
    ]);
    if (phases.length === 0) continue;
    // Nothing after CREATE DATABASE in the main phases concerns a user database's insides. But a
    // database copied from another (TEMPLATE) cannot be while someone is connected to that one.
    const startsAfter = copiesFromTemplate ? undefined : created.get(db.name);
    perDatabase.push(
      startsAfter ? { database: db.name, phases, startsAfter } : { database: db.name, phases },
    );
  }
  // The system database gets only the role cleanup: users cannot drop it, and its public schema
  // and subscriptions are compute_ctl's own.
  const system = nonEmpty([deleteRoleReferences(ctx, spec, null)]);
  if (system.length > 0) perDatabase.push({ database: null, phases: system });

  const preload = spec.cluster.settings?.find((o) => o.name === "shared_preload_libraries")?.value;
  const audit = spec.audit_log_level;
  const final = nonEmpty([
    // Only the settings list counts, not postgresql_conf (as in the reference).
    phase(
      "HandleOtherExtensions",
      preload?.includes("pg_stat_statements") ? [{ sql: q.CREATE_PG_STAT_STATEMENTS }] : [],
    ),
    phase(
      "HandleNeonExtension",
      q.NEON_EXTENSION.map((s) => ({ ...s })),
    ),
    ...(lakebase
      ? [
          phase(
            "HandleDatabricksAuthExtension",
            q.DATABRICKS_AUTH_EXTENSION.map((s) => ({ ...s })),
          ),
        ]
      : []),
    phase("CreateAvailabilityCheck", [{ sql: q.HEALTH_CHECK }]),
    phase(
      "DropRoles",
      ops(spec, "delete_role").map((op) => ({
        sql: `DROP ROLE IF EXISTS ${pgQuote(op.name)}`,
        comment: `deleting role ${op.name}`,
      })),
    ),
    ...(lakebase
      ? [
          phase(
            "AddDatabricksGrants",
            q.DATABRICKS_GRANTS.map((s) => ({ ...s })),
          ),
          phase("CreateDatabricksMisc", [
            {
              sql: q.DATABRICKS_MISC,
              comment: "The function databricks_monitor uses to convert exception to 0 or 1",
            },
          ]),
        ]
      : []),
    ...(dropSubscriptions
      ? [
          phase("FinalizeDropLogicalSubscriptions", [
            { sql: q.finalizeDropSubscriptions(opts.timelineId) },
          ]),
        ]
      : []),
    // Last, so that everything before it is audit-logged.
    ...(audit === "Disabled"
      ? []
      : [
          phase("CreatePgauditExtension", [{ sql: q.AUDIT.pgaudit }]),
          ...(audit === "Hipaa" || audit === "Extended" || audit === "Full"
            ? [phase("CreatePgauditlogtofileExtension", [{ sql: q.AUDIT.pgauditlogtofile }])]
            : []),
          phase("DisablePostgresDBPgAudit", [{ sql: q.AUDIT.quietSystemDb }]),
        ]),
  ]);

  return { preDrop, main, perDatabase, final, warnings };
}

/** Every statement of a plan in execution order, with the database it runs in. */
export function planStatements(plan: Plan): { database: string | null; sql: string }[] {
  const out: { database: string | null; sql: string }[] = [];
  const task = (t: DatabaseTask) => {
    for (const p of t.phases)
      for (const s of p.statements) out.push({ database: t.database, sql: s.sql });
  };
  plan.preDrop.forEach(task);
  for (const p of plan.main) for (const s of p.statements) out.push({ database: null, sql: s.sql });
  plan.perDatabase.forEach(task);
  for (const p of plan.final)
    for (const s of p.statements) out.push({ database: null, sql: s.sql });
  return out;
}

/** libpq conninfo value quoting: single quotes, `\` and `'` backslash-escaped. */
function conninfoValue(s: string): string {
  return `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/**
 * The plan as a psql script (the dry run). Each statement is its own autocommit command; the
 * database switches use a conninfo string so names containing `=` or spaces survive. Run it with
 * the maintenance options, e.g. PGOPTIONS="-c search_path='' -c statement_timeout=0".
 */
export function formatPlan(plan: Plan, systemDatabase: string): string {
  const lines: string[] = [];
  for (const w of plan.warnings) lines.push(`-- warning: ${w}`);
  let current = systemDatabase;
  const connect = (db: string | null) => {
    const name = db ?? systemDatabase;
    if (name === current) return;
    current = name;
    // psql reads a double-quoted argument verbatim except that "" stands for one ".
    const arg = `dbname=${conninfoValue(name)}`.replaceAll('"', '""');
    lines.push(`\\connect -reuse-previous=on "${arg}"`);
  };
  const emit = (where: string, p: Phase, db: string | null) => {
    connect(db);
    lines.push(`-- ${where}${p.name}`);
    for (const s of p.statements) {
      if (s.comment) lines.push(`-- ${s.comment.replaceAll("\n", " ")}`);
      lines.push(`${s.sql};`);
    }
  };
  for (const t of plan.preDrop) for (const p of t.phases) emit(`[${t.database}] `, p, t.database);
  for (const p of plan.main) emit("", p, null);
  for (const t of plan.perDatabase) {
    for (const p of t.phases) emit(`[${t.database ?? systemDatabase}] `, p, t.database);
  }
  for (const p of plan.final) emit("", p, null);
  connect(null);
  return `${lines.join("\n")}\n`;
}
