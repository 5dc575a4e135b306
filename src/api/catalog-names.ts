// The role and database names of a spec, checked before anything is applied. Postgres would
// refuse an empty name or a NUL, silently cut a name to 63 bytes (so the next apply finds no
// role of the spec's name and fails creating it again), and a name listed twice makes the apply
// create it twice: each of these would fail the apply half-way, or on every later one.
// Role and database options are written into CREATE/ALTER statements as `NAME value`, the value
// unquoted unless its vartype is "string": a name or an unquoted value that is not one plain word
// would let a spec add SQL of its own, so those are refused too. An option whose value is null
// is written as its bare name: for an option Postgres' grammar gives a value (`CONNECTION LIMIT`,
// `VALID UNTIL`, every `CREATE DATABASE` option) that is a syntax error half-way through the
// apply, so it is refused as well.
import type { ComputeSpec, GenericOptions } from "./spec.ts";

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

/** `CONNECTION LIMIT`, `TEMPLATE`, `LC_COLLATE`: keywords separated by single spaces. */
const OPTION_NAME = /^[A-Za-z_]+( [A-Za-z_]+)*$/;
/** An unquoted option value: a number, a keyword or a plain identifier. */
const RAW_OPTION_VALUE = /^[A-Za-z0-9_.+-]+$/;

/** CREATE/ALTER ROLE options that Postgres' grammar only accepts followed by a value. */
const ROLE_OPTIONS_WITH_VALUE = new Set([
  "PASSWORD",
  "ENCRYPTED PASSWORD",
  "UNENCRYPTED PASSWORD",
  "CONNECTION LIMIT",
  "VALID UNTIL",
  "SYSID",
  "USER",
  "ROLE",
  "ADMIN",
  "IN ROLE",
  "IN GROUP",
]);

/**
 * Whether `name`, written bare, lacks the value Postgres requires after it. A database option is
 * always `name value` (one word, or `CONNECTION LIMIT`); a longer name such as `TEMPLATE
 * template0` carries its own value.
 */
function needsValue(kind: "role" | "database", name: string): boolean {
  const upper = name.toUpperCase();
  if (kind === "role") return ROLE_OPTIONS_WITH_VALUE.has(upper);
  return !upper.includes(" ") || upper === "CONNECTION LIMIT";
}

function optionsProblem(
  kind: "role" | "database",
  path: string,
  options: GenericOptions,
): string | null {
  for (const [j, o] of (options ?? []).entries()) {
    if (!OPTION_NAME.test(o.name)) {
      return `${path}.options[${j}].name: invalid option name ${JSON.stringify(o.name)}, expected keywords separated by spaces`;
    }
    if (o.value === null && needsValue(kind, o.name)) {
      return `${path}.options[${j}].value: ${kind} option ${JSON.stringify(o.name)} needs a value, got null`;
    }
    if (o.value !== null && o.vartype === "integer" && !/^[+-]?[0-9]+$/.test(o.value)) {
      return `${path}.options[${j}].value: invalid integer value ${JSON.stringify(o.value)}`;
    }
    if (o.value !== null && o.vartype !== "string" && !RAW_OPTION_VALUE.test(o.value)) {
      return `${path}.options[${j}].value: invalid ${o.vartype} value ${JSON.stringify(o.value)}, expected a number or a word (or vartype "string")`;
    }
  }
  return null;
}

/** The first problem with a role or database name or option of `spec`, as `<json path>: <problem>`, or null. */
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
  for (const [i, role] of spec.cluster.roles.entries()) {
    const p = optionsProblem("role", `spec.cluster.roles[${i}]`, role.options);
    if (p) return p;
  }
  for (const [i, db] of spec.cluster.databases.entries()) {
    const p =
      nameProblem(`spec.cluster.databases[${i}].owner`, db.owner) ??
      optionsProblem("database", `spec.cluster.databases[${i}]`, db.options);
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
