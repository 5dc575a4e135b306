// The role and database names of a spec, checked before anything is applied. Postgres would
// refuse an empty name or a NUL, silently cut a name to 63 bytes (so the next apply finds no
// role of the spec's name and fails creating it again), and a name listed twice makes the apply
// create it twice: each of these would fail the apply half-way, or on every later one.
import type { ComputeSpec } from "./spec.ts";

const DELTA_ACTIONS = ["rename_role", "rename_db", "delete_role", "delete_db"];

/** NAMEDATALEN - 1: the longest identifier Postgres keeps whole. */
const MAX_NAME_BYTES = 63;

function nameProblem(path: string, name: string): string | null {
  if (name === "") return `${path}: empty name`;
  if (name.includes("\0")) return `${path}: name contains a NUL character`;
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_NAME_BYTES) {
    return `${path}: name is ${bytes} bytes long, Postgres keeps at most ${MAX_NAME_BYTES}`;
  }
  return null;
}

/** The first problem with a role or database name of `spec`, as `<json path>: <problem>`, or null. */
export function catalogNameProblem(spec: ComputeSpec): string | null {
  const seen = { role: new Set<string>(), database: new Set<string>() };
  const lists = [
    ["role", "spec.cluster.roles", spec.cluster.roles] as const,
    ["database", "spec.cluster.databases", spec.cluster.databases] as const,
  ];
  for (const [kind, base, items] of lists) {
    for (const [i, item] of items.entries()) {
      const p = nameProblem(`${base}[${i}].name`, item.name);
      if (p) return p;
      if (seen[kind].has(item.name)) {
        return `${base}[${i}].name: ${kind} ${JSON.stringify(item.name)} is listed twice`;
      }
      seen[kind].add(item.name);
    }
  }
  for (const [i, db] of spec.cluster.databases.entries()) {
    const p = nameProblem(`spec.cluster.databases[${i}].owner`, db.owner);
    if (p) return p;
  }
  for (const [i, op] of (spec.delta_operations ?? []).entries()) {
    // Unknown actions are ignored by the apply, and so are their names.
    if (!DELTA_ACTIONS.includes(op.action)) continue;
    const p =
      nameProblem(`spec.delta_operations[${i}].name`, op.name) ??
      (op.new_name === null
        ? null
        : nameProblem(`spec.delta_operations[${i}].new_name`, op.new_name));
    if (p) return p;
  }
  return null;
}
