// The single validation entry point for wire documents. A schema-driven walk validates the
// value the way serde would, applies defaults, normalises (ids, LSNs, features), drops unknown
// fields and reports the first problem as ONE line `<json path>: <problem>`. The decoded result
// is then checked with TypeBox's Value.Check, so the schema stays the contract even if the walk
// and the schema ever drift apart. Value.Check interprets the schema: TypeCompiler would generate
// and compile a checker for the whole ComputeConfig on the first decode, which is on the start
// path and costs more time and resident memory (~2.5 MiB) than the checks it would speed up (a
// document is decoded once; a 1,200-entry spec takes ~2 ms to check).
import { Kind, type Static, type TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { duplicateKey, scanJson } from "./json-scan.ts";
import { normalizeLsn } from "./lsn.ts";
import {
  X_CHECK,
  X_EXACT_RANGE,
  X_EXPECTED,
  X_KEY_EXPECTED,
  X_NORMALIZE,
  X_NORMALIZE_KEYS,
  X_REQUIRED_IF,
} from "./spec.ts";

/** A document that parsed as JSON but does not have the expected shape (HTTP 422). */
export class SchemaError extends Error {
  override name = "SchemaError";
  /** Dotted JSON path with `[i]` for array items and `["key"]` for odd keys; `$` is the root. */
  readonly path: string;
  /** The message without its path. */
  readonly problem: string;

  constructor(path: string, problem: string) {
    super(`${path}: ${problem}`);
    this.path = path;
    this.problem = problem;
  }
}

/** A body that is not JSON at all (HTTP 400). */
export class JsonSyntaxError extends Error {
  override name = "JsonSyntaxError";
}

type Seg = string | number;
// biome-ignore lint/suspicious/noExplicitAny: schemas are walked generically by their keywords.
type Schema = Record<string | symbol, any>;
type Normalizer = "lowercase" | "lsn" | { known: string[]; fallback: string };

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
// TypeBox's pattern for `T.Record(T.String(), …)`; it would miss keys with newlines, so any key
// goes for it.
const ANY_KEY_PATTERN = "^(.*)$";

export function formatPath(path: readonly Seg[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (IDENT.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out === "" ? "$" : out;
}

function fail(path: readonly Seg[], problem: string): never {
  throw new SchemaError(formatPath(path), problem);
}

const regexCache = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (!re) {
    re = new RegExp(pattern);
    regexCache.set(pattern, re);
  }
  return re;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function got(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value.length > 64 ? `${value.slice(0, 61)}...` : value);
    case "number":
    case "bigint":
    case "boolean":
      return String(value);
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

function orList(items: string[]): string {
  if (items.length <= 1) return items[0] ?? "nothing";
  return `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

function describeInteger(schema: Schema, value: unknown): string {
  const min: number | undefined = schema.minimum;
  const max: number | undefined = schema.maximum;
  if (min === 1) return value === 0 ? "a non-zero integer" : "a positive integer";
  if (min === 0 && max !== undefined && max >= 2 ** 64 - 1) return "a non-negative integer";
  if (min === 0 && max !== undefined) return `an integer between 0 and ${max}`;
  if (min !== undefined && min > -(2 ** 63)) return `an integer of at least ${min}`;
  return "an integer";
}

function expected(schema: Schema, value?: unknown): string {
  if (typeof schema[X_EXPECTED] === "string") return schema[X_EXPECTED];
  switch (schema[Kind]) {
    case "String":
      return schema.pattern ? `a string matching /${schema.pattern}/` : "a string";
    case "Number":
      return "a number";
    case "Integer":
      return describeInteger(schema, value);
    case "Boolean":
      return "a boolean";
    case "Null":
      return "null";
    case "Array":
      return "an array";
    case "Object":
    case "Record":
      return "an object";
    case "Literal":
      return JSON.stringify(schema.const);
    case "Union":
      return orList((schema.anyOf as Schema[]).map((m) => expected(m, value)));
    default:
      return "a value";
  }
}

function expectedNonNull(schema: Schema | undefined): string {
  if (schema?.[Kind] !== "Union") return schema ? expected(schema) : "a value";
  return orList(
    (schema.anyOf as Schema[]).filter((m) => m[Kind] !== "Null").map((m) => expected(m)),
  );
}

function mismatch(schema: Schema, value: unknown, path: readonly Seg[]): never {
  fail(path, `expected ${expected(schema, value)}, got ${got(value)}`);
}

function normalizeString(n: Normalizer | undefined, value: string): string {
  if (n === undefined) return value;
  if (n === "lowercase") return value.toLowerCase();
  if (n === "lsn") return normalizeLsn(value);
  return n.known.includes(value) ? value : n.fallback;
}

function defineKey(out: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, so that a "__proto__" key stays data instead of replacing the prototype.
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

function walkObject(schema: Schema, value: unknown, path: readonly Seg[]): unknown {
  if (!isPlainObject(value)) mismatch(schema, value, path);
  const props = schema.properties as Record<string, Schema>;
  // Fields present in the input are checked first, in document order (as serde does), so a
  // problem inside a nested value wins over a missing sibling.
  const decoded = new Map<string, unknown>();
  for (const [key, v] of Object.entries(value)) {
    const prop = props[key];
    if (prop !== undefined && duplicates?.has(duplicateKey(path, key))) {
      fail(path, `duplicate field \`${key}\``);
    }
    if (prop === undefined || !Object.hasOwn(props, key)) {
      if (schema.additionalProperties === false) fail(path, `unknown field ${JSON.stringify(key)}`);
      continue; // unknown fields are ignored, as in the reference
    }
    if (v !== undefined) decoded.set(key, walk(prop, v, [...path, key]));
  }
  const out: Record<string, unknown> = {};
  const required: string[] = schema.required ?? [];
  for (const [key, prop] of Object.entries(props)) {
    if (decoded.has(key)) out[key] = decoded.get(key);
    else if ("default" in prop) out[key] = structuredClone(prop.default);
    else if (required.includes(key)) fail([...path, key], "missing field");
  }
  const requiredIf = schema[X_REQUIRED_IF] as
    | Record<string, Record<string, readonly unknown[]>>
    | undefined;
  for (const [field, conditions] of Object.entries(requiredIf ?? {})) {
    if (out[field] !== null && out[field] !== undefined) continue;
    for (const [other, values] of Object.entries(conditions)) {
      if (!values.includes(out[other])) continue;
      const when = `when ${other} is ${got(out[other])}`;
      if (decoded.has(field))
        fail([...path, field], `expected ${expectedNonNull(props[field])} ${when}, got null`);
      fail([...path, field], `missing field (required ${when})`);
    }
  }
  return out;
}

function walkRecord(schema: Schema, value: unknown, path: readonly Seg[]): unknown {
  if (!isPlainObject(value)) mismatch(schema, value, path);
  const [[pattern, valueSchema] = [ANY_KEY_PATTERN, {}]] = Object.entries(
    schema.patternProperties as Record<string, Schema>,
  );
  const lowerKeys = schema[X_NORMALIZE_KEYS] === "lowercase";
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (pattern !== ANY_KEY_PATTERN && !regex(pattern).test(key)) {
      if (schema.additionalProperties === false) {
        const what = schema[X_KEY_EXPECTED] ?? `a key matching /${pattern}/`;
        fail(path, `invalid key ${JSON.stringify(key)}, expected ${what}`);
      }
      continue;
    }
    defineKey(out, lowerKeys ? key.toLowerCase() : key, walk(valueSchema, v, [...path, key]));
  }
  return out;
}

/** An enum made of unit variants (string literals) and newtype variants ({"Name": value}). */
function walkEnum(schema: Schema, members: Schema[], value: unknown, path: readonly Seg[]) {
  const units = members.filter((m) => m[Kind] === "Literal").map((m) => m.const as unknown);
  const newtypes = new Map<string, Schema>();
  for (const m of members) {
    if (m[Kind] === "Object") newtypes.set(Object.keys(m.properties)[0] ?? "", m);
  }
  const list = expected(schema, value);
  if (typeof value === "string") {
    if (units.includes(value)) return value;
    if (newtypes.has(value)) mismatch(schema, value, path); // the variant needs its value
    fail(path, `unknown variant ${JSON.stringify(value)}, expected ${list}`);
  }
  if (isPlainObject(value) && newtypes.size > 0) {
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const variant = newtypes.get(keys[0] ?? "");
      if (variant) return walkObject(variant, value, path);
      fail(path, `unknown variant ${JSON.stringify(keys[0])}, expected ${list}`);
    }
  }
  mismatch(schema, value, path);
}

function isNewtypeVariant(m: Schema): boolean {
  return (
    m[Kind] === "Object" &&
    m.additionalProperties === false &&
    Object.keys(m.properties).length === 1
  );
}

function walkUnion(schema: Schema, value: unknown, path: readonly Seg[]): unknown {
  const anyOf = schema.anyOf as Schema[];
  const members = anyOf.filter((m) => m[Kind] !== "Null");
  if (value === null) {
    if (members.length < anyOf.length) return null;
    mismatch(schema, value, path);
  }
  // Option<T>: report T's own problem, at T's depth.
  if (members.length === 1 && members[0]) return walk(members[0], value, path);
  if (members.every((m) => m[Kind] === "Literal" || isNewtypeVariant(m))) {
    return walkEnum(schema, members, value, path);
  }
  let deepest: SchemaError | null = null;
  for (const m of members) {
    try {
      return walk(m, value, path);
    } catch (err) {
      if (!(err instanceof SchemaError)) throw err;
      if (!deepest || err.path.length > deepest.path.length) deepest = err;
    }
  }
  throw deepest ?? new SchemaError(formatPath(path), `expected ${expected(schema)}`);
}

/** A value with the big integers parseJson kept exact turned back into numbers. */
function plainNumbers(value: unknown): unknown {
  if (typeof value === "bigint") return Number(value);
  if (Array.isArray(value)) return value.map(plainNumbers);
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) defineKey(out, k, plainNumbers(v));
    return out;
  }
  return value;
}

function walkInteger(schema: Schema, value: unknown, path: readonly Seg[]): number {
  if (typeof value === "bigint") {
    // An integer literal beyond 2^53, kept exact by parseJson: the type's exact range decides,
    // then the value is a double like any other.
    const range = schema[X_EXACT_RANGE] as { min: bigint; max: bigint } | undefined;
    const min = range?.min ?? (schema.minimum === undefined ? undefined : BigInt(schema.minimum));
    const max = range?.max ?? (schema.maximum === undefined ? undefined : BigInt(schema.maximum));
    if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
      mismatch(schema, value, path);
    }
    return Number(value);
  }
  if (
    typeof value !== "number" ||
    !Number.isInteger(value) ||
    (schema.minimum !== undefined && value < schema.minimum) ||
    (schema.maximum !== undefined && value > schema.maximum)
  ) {
    mismatch(schema, value, path);
  }
  return value;
}

function walk(schema: Schema, value: unknown, path: readonly Seg[]): unknown {
  const kind = schema[Kind];
  if (typeof value === "bigint" && kind !== "Integer" && kind !== "Union") {
    return walk(schema, Number(value), path);
  }
  switch (kind) {
    case "Object": {
      const out = walkObject(schema, value, path);
      const problem = schema[X_CHECK]?.(out);
      if (problem) fail([...path, ...problem.path], problem.problem);
      return out;
    }
    case "Record":
      return walkRecord(schema, value, path);
    case "Union":
      return walkUnion(schema, value, path);
    case "Array":
      if (!Array.isArray(value)) mismatch(schema, value, path);
      return value.map((item, i) => walk(schema.items, item, [...path, i]));
    case "Literal":
      if (value !== schema.const) mismatch(schema, value, path);
      return value;
    case "String":
      if (typeof value !== "string") mismatch(schema, value, path);
      if (schema.pattern !== undefined && !regex(schema.pattern).test(value)) {
        mismatch(schema, value, path);
      }
      return normalizeString(schema[X_NORMALIZE], value);
    case "Number":
      if (typeof value !== "number" || !Number.isFinite(value)) mismatch(schema, value, path);
      return value;
    case "Integer":
      return walkInteger(schema, value, path);
    case "Boolean":
      if (typeof value !== "boolean") mismatch(schema, value, path);
      return value;
    case "Null":
      if (value !== null) mismatch(schema, value, path);
      return value;
    case "Unknown":
      return plainNumbers(value);
    default:
      throw new Error(`decode: schema kind ${String(schema[Kind])} is not supported`);
  }
}

function pointerToPath(pointer: string): Seg[] {
  if (pointer === "") return [];
  return pointer
    .split("/")
    .slice(1)
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

/**
 * Validates `value` against `schema` and returns the decoded document: defaults applied for
 * absent fields, Option fields absent → null, unknown fields dropped, ids lower-cased, LSNs in
 * canonical form, unknown features → "unknown_feature". Throws SchemaError on the first problem.
 */
export function decode<S extends TSchema>(schema: S, value: unknown): Static<S> {
  const out = walk(schema as Schema, value, []);
  if (!Value.Check(schema, out)) {
    // The walk accepted what the schema rejects: still report one line, TypeBox's first error.
    const first = Value.Errors(schema, out).First();
    throw new SchemaError(
      formatPath(pointerToPath(first?.path ?? "")),
      first?.message ?? "invalid value",
    );
  }
  return out as Static<S>;
}

/** Duplicate keys of the document being decoded by parseJson (see json-scan.ts). */
let duplicates: Set<string> | null = null;

const SAFE = 2 ** 53;

/** Integer literals beyond 2^53 stay exact (as bigint) so that type bounds are checked exactly. */
function exactIntegers(_key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value !== "number" || (value < SAFE && value > -SAFE)) return value;
  const source = context?.source;
  return source !== undefined && /^-?[0-9]+$/.test(source) ? BigInt(source) : value;
}

/**
 * Parses JSON text then decodes it, refusing what serde_json refuses: a byte order mark, nesting
 * of 128 levels, lone surrogate escapes (JsonSyntaxError, like bad syntax) and a repeated struct
 * field (SchemaError; in a map the last value wins, as in serde). Bad shape throws SchemaError.
 */
export function parseJson<S extends TSchema>(schema: S, text: string): Static<S> {
  let value: unknown;
  let scanned: Set<string>;
  try {
    scanned = scanJson(text).duplicates;
    // The reviver's third argument (the literal's source text) is newer than the lib types.
    value = (JSON.parse as (t: string, r: typeof exactIntegers) => unknown)(text, exactIntegers);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new JsonSyntaxError(`invalid JSON: ${detail}`, { cause: err });
  }
  duplicates = scanned.size > 0 ? scanned : null;
  try {
    return decode(schema, value);
  } finally {
    duplicates = null;
  }
}
