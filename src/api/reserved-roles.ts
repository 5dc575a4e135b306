// Role names a spec may not manage: Postgres reserves `pg_*`, `public` and `none`; compute_ctl
// connects as `cloud_admin` (or `zenith_admin` on old images) and grants the privileged role
// (--privileged-role-name, `neon_superuser` by default) to every role it creates. Changing any of
// them from a spec would break the compute, so such a spec is refused before anything changes.
import { formatPath } from "./decode.ts";
import type { ComputeSpec } from "./spec.ts";

const COMPUTE_CTL_ROLES = ["cloud_admin", "zenith_admin"];
const POSTGRES_ROLES = ["public", "none"];

function why(name: string, privilegedRoleName: string): string | null {
  if (name === privilegedRoleName) return "it is the privileged role (--privileged-role-name)";
  if (COMPUTE_CTL_ROLES.includes(name)) return "compute_ctl connects as it";
  if (POSTGRES_ROLES.includes(name) || name.startsWith("pg_")) return "Postgres reserves it";
  return null;
}

/**
 * The first reserved role name the spec creates, alters, renames or deletes, as a one-line
 * problem naming its JSON path (under `spec.`), or null.
 */
export function reservedRoleProblem(spec: ComputeSpec, privilegedRoleName: string): string | null {
  const found: [(string | number)[], string][] = spec.cluster.roles.map((r, i) => [
    ["spec", "cluster", "roles", i, "name"],
    r.name,
  ]);
  for (const [i, op] of (spec.delta_operations ?? []).entries()) {
    if (op.action !== "delete_role" && op.action !== "rename_role") continue;
    found.push([["spec", "delta_operations", i, "name"], op.name]);
    if (op.new_name !== null)
      found.push([["spec", "delta_operations", i, "new_name"], op.new_name]);
  }
  for (const [path, name] of found) {
    const reason = why(name, privilegedRoleName);
    if (reason)
      return `${formatPath(path)}: role name ${JSON.stringify(name)} is reserved: ${reason}`;
  }
  return null;
}
