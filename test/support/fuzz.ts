// Seeded generation of ComputeSpec / ComputeConfig documents for the abuse campaign: valid
// documents built from the TypeBox schemas (so new fields are covered without editing this file),
// and mutations of them at the value level (wrong types, missing and extra keys, huge and empty
// strings, deep nesting, odd Unicode, numbers at the edges) and at the text level (duplicated
// keys, a byte order mark, lone surrogates, nesting beyond serde's limit, truncation).
//
// Every run prints its seed; COMPUTE_CTL_TEST_SEED fixes it, so a failure is replayed exactly.
import { Kind } from "@sinclair/typebox";
import { ConfigurationRequest } from "../../src/api/config.ts";
import { JsonSyntaxError, parseJson, SchemaError } from "../../src/api/decode.ts";
import { type ParsedSpec, parseSpec } from "../../src/api/parsed-spec.ts";
import { ComputeSpec } from "../../src/api/spec.ts";

/** The campaign's seed: COMPUTE_CTL_TEST_SEED, or a fresh one (printed by the caller). */
export function campaignSeed(): number {
  const fixed = process.env.COMPUTE_CTL_TEST_SEED;
  if (fixed !== undefined && fixed !== "") {
    const n = Number(fixed);
    if (!Number.isInteger(n)) throw new Error(`COMPUTE_CTL_TEST_SEED=${fixed}: not an integer`);
    return n >>> 0;
  }
  return (Math.random() * 2 ** 32) >>> 0;
}

/** An integer env knob with a default (a count of cases, moments, clients…). */
export function knob(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${v}: not a non-negative integer`);
  return n;
}

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  }
  /** A derived seed, so that case i can be replayed alone. */
  fork(): number {
    return (this.next() * 2 ** 32) >>> 0;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: generated documents are free-form JSON.
export type Json = any;
// biome-ignore lint/suspicious/noExplicitAny: schemas are walked generically by their keywords.
type Schema = Record<string | symbol, any>;

export const TENANT = "b0554b632bd4d547a63b86c3630317e8";
export const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";

/** Pieces of names: plain, quotes, control characters, odd Unicode (not lone surrogates: names
 * must survive a UTF-8 round trip to be comparable byte-exact). */
const NAME_PARTS = [
  "a",
  "user",
  "db",
  "X",
  "_",
  "1",
  " ",
  '"',
  "'",
  "\\",
  ";",
  "$$",
  "--",
  "\t",
  "\x01",
  "\x1b[31m",
  "\x7f",
  "é",
  "ß",
  "İ",
  "Ω",
  "日本",
  "🙂",
  "\u200b",
  "\u202e",
  "\ufeff",
  "%s",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a name that looks like a template.
  "${x}",
  "=",
  ",",
  "/",
  "..",
];

/** A role or database name Postgres accepts: 1..63 bytes, no NUL. */
export function genName(rng: Rng): string {
  let s = "";
  const parts = rng.int(1, 4);
  for (let i = 0; i < parts; i++) s += rng.pick(NAME_PARTS);
  while (Buffer.byteLength(s) > 63) s = s.slice(0, -1);
  // A trailing lone high surrogate after the cut would not be valid UTF-8.
  if (/[\ud800-\udbff]$/.test(s)) s = s.slice(0, -1);
  return s === "" ? "n" : s;
}

const STRINGS = [
  "",
  "x",
  "on",
  "off",
  "0",
  "-1",
  "1e3",
  "'quoted'",
  "a\nb",
  "a\rb",
  "a\0b",
  "日本語",
  "🙂",
  "\u202e",
  "\\",
  "%",
  "x".repeat(300),
];

/** Numbers that sit on or next to the edges of the integer types serde knows. */
const EDGE_NUMBERS: readonly (number | string)[] = [
  0,
  -0,
  1,
  -1,
  0.5,
  1e300,
  -1e300,
  255,
  256,
  2147483647,
  2147483648,
  -2147483649,
  4294967295,
  4294967296,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  // As literals, so they stay exact on the wire (see numberLiteral).
  "18446744073709551615",
  "18446744073709551616",
  "9223372036854775807",
  "9223372036854775808",
  "-9223372036854775808",
  "-9223372036854775809",
  "1e400",
  "-1e400",
  "1.0",
  "1E2",
];

/** A marker replaced by a raw number literal when the document is serialised. */
const LITERAL = "\u0000lit:";

function numberLiteral(v: number | string): Json {
  return typeof v === "number" ? v : `${LITERAL}${v}`;
}

function hex(rng: Rng, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += "0123456789abcdefABCDEF"[rng.int(0, 21)];
  return s;
}

function stringFor(rng: Rng, schema: Schema): string {
  const pattern: string | undefined = schema.pattern;
  if (pattern === "^[0-9A-Fa-f]{32}$") return hex(rng, 32);
  if (pattern?.includes("/")) return `${rng.int(0, 15).toString(16)}/${hex(rng, rng.int(1, 8))}`;
  if (pattern !== undefined) return rng.pick(["0000", "0001", "0102", "ff00"]);
  return rng.chance(0.5) ? rng.pick(STRINGS) : genName(rng);
}

function integerFor(rng: Rng, schema: Schema): number {
  const min: number = schema.minimum ?? -1000;
  const max: number = schema.maximum ?? 1000;
  const candidates = [min, Math.min(max, min + 1), Math.min(max, 1000), 1, 0].filter(
    (n) => n >= min && n <= max && Number.isSafeInteger(n),
  );
  return rng.pick(candidates.length ? candidates : [min]);
}

/** A value valid for `schema`, or undefined when none can be made (the field is then left out). */
export function genValue(rng: Rng, schema: Schema, depth = 0): Json {
  if ("default" in schema && rng.chance(0.3)) return structuredClone(schema.default);
  switch (schema[Kind]) {
    case "Object": {
      const out: Json = {};
      const required: string[] = schema.required ?? [];
      for (const [k, prop] of Object.entries(schema.properties as Record<string, Schema>)) {
        const must = required.includes(k) && !("default" in prop);
        if (!must && (depth > 3 || rng.chance(0.5))) continue;
        const v = genValue(rng, prop, depth + 1);
        if (v !== undefined) out[k] = v;
      }
      return out;
    }
    case "Record": {
      const [[pattern, valueSchema] = ["", {}]] = Object.entries(
        schema.patternProperties as Record<string, Schema>,
      );
      const out: Json = {};
      for (let i = rng.int(0, 3); i > 0; i--) {
        const key = stringFor(rng, pattern === "^(.*)$" ? {} : { pattern });
        const v = genValue(rng, valueSchema, depth + 1);
        if (v !== undefined) out[key] = v;
      }
      return out;
    }
    case "Union": {
      const members = schema.anyOf as Schema[];
      return genValue(rng, rng.pick(members), depth);
    }
    case "Array":
      if (depth > 4) return [];
      return Array.from({ length: rng.int(0, 3) }, () => genValue(rng, schema.items, depth + 1));
    case "Literal":
      return schema.const;
    case "String":
      return stringFor(rng, schema);
    case "Number":
      return rng.pick([0, 1, 1.5, -2.25, 1e10]);
    case "Integer":
      return integerFor(rng, schema);
    case "Boolean":
      return rng.chance(0.5);
    case "Null":
      return null;
    default:
      return rng.pick(["x", 1, true, null, {}, []]);
  }
}

/** Roles, databases and delta operations whose names are all distinct and consistent. */
function genCatalogPart(
  rng: Rng,
  suffix: string,
): { roles: Json[]; databases: Json[]; delta: Json[] | null } {
  const used = new Set<string>(["cloud_admin", "neon_superuser", "postgres", "template0"]);
  const fresh = () => {
    for (;;) {
      let n = genName(rng);
      while (Buffer.byteLength(n + suffix) > 63) n = n.slice(0, -1);
      if (/[\ud800-\udbff]$/.test(n)) n = n.slice(0, -1);
      n += suffix;
      if (n !== "" && !used.has(n) && !n.startsWith("pg_")) {
        used.add(n);
        return n;
      }
    }
  };
  const password = () =>
    rng.pick([
      null,
      hex(rng, 32).toLowerCase(),
      "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy",
      "it's\\odd",
    ]);
  const roleOptions = () =>
    rng.chance(0.7) ? null : [{ name: "CONNECTION LIMIT", value: "5", vartype: "integer" }];
  const roles: Json[] = [];
  for (let i = rng.int(0, 4); i > 0; i--) {
    roles.push({ name: fresh(), encrypted_password: password(), options: roleOptions() });
  }
  const databases: Json[] = [];
  for (let i = rng.int(0, 3); i > 0; i--) {
    const owner = roles.length && rng.chance(0.8) ? rng.pick(roles).name : "cloud_admin";
    databases.push({ name: fresh(), owner, options: null });
  }
  let delta: Json[] | null = null;
  if (rng.chance(0.4)) {
    delta = [];
    // Renames go from a name no longer in the spec to one that is; deletions name fresh roles.
    if (roles.length && rng.chance(0.5)) {
      delta.push({ action: "rename_role", name: fresh(), new_name: rng.pick(roles).name });
    }
    if (databases.length && rng.chance(0.5)) {
      delta.push({ action: "rename_db", name: fresh(), new_name: rng.pick(databases).name });
    }
    if (rng.chance(0.5)) delta.push({ action: "delete_role", name: fresh() });
    if (rng.chance(0.5)) delta.push({ action: "delete_db", name: fresh() });
    // Renames must not collide: a rename target appears once.
    const targets = new Set<string>();
    delta = delta.filter((op) => {
      if (op.new_name === undefined) return true;
      const key = `${op.action}:${op.new_name}`;
      if (targets.has(key)) return false;
      targets.add(key);
      return true;
    });
  }
  return { roles, databases, delta };
}

const SETTING_NAMES = [
  "work_mem",
  "shared_buffers",
  "log_min_messages",
  "neon.custom",
  "application_name",
  "max_connections",
];

/** A ComputeSpec that the decoder, ParsedSpec and the planner all accept. */
export function genValidSpec(rng: Rng, suffix = ""): Json {
  const spec: Json = {};
  const props = (ComputeSpec as unknown as Schema).properties as Record<string, Schema>;
  // Optional fields from the schema, then the fields ParsedSpec needs, set consistently.
  for (const [k, prop] of Object.entries(props)) {
    if (rng.chance(0.25)) {
      const v = genValue(rng, prop, 1);
      if (v !== undefined) spec[k] = v;
    }
  }
  const { roles, databases, delta } = genCatalogPart(rng, suffix);
  const settings: Json[] = [];
  for (let i = rng.int(0, 3); i > 0; i--) {
    settings.push({
      name: rng.pick(SETTING_NAMES),
      value: rng.pick(["1", "64MB", "on", "x y", "日本"]),
      vartype: rng.pick(["integer", "string", "bool", "enum"]),
    });
  }
  spec.format_version = 1.0;
  spec.cluster = {
    cluster_id: rng.chance(0.5) ? "c" : null,
    name: rng.chance(0.5) ? genName(rng) : null,
    roles,
    databases,
    settings: rng.chance(0.3) ? null : settings,
  };
  spec.delta_operations = delta;
  spec.tenant_id = TENANT;
  spec.timeline_id = TIMELINE;
  delete spec.pageserver_connection_info;
  spec.pageserver_connstring = "postgres://no_user@localhost:64000";
  spec.shard_stripe_size = null;
  spec.safekeeper_connstrings = ["localhost:5454", "localhost:5455"];
  spec.mode = "Primary";
  spec.suspend_timeout_seconds = rng.pick([-1, 0, 300]);
  // The sidecar fields are checked by their own validators; leave them to the mutations.
  delete spec.pgbouncer_settings;
  delete spec.local_proxy_config;
  delete spec.remote_extensions;
  delete spec.databricks_settings;
  delete spec.logs_export_host;
  delete spec.endpoint_id;
  delete spec.project_id;
  delete spec.branch_id;
  delete spec.endpoint_storage_addr;
  delete spec.endpoint_storage_token;
  delete spec.storage_auth_token;
  delete spec.features;
  return spec;
}

const EXTRA_KEYS = [
  "__proto__",
  "constructor",
  "toJSON",
  "prototype",
  "hasOwnProperty",
  "",
  "é",
  "x".repeat(1000),
];

function wrongValue(rng: Rng): Json {
  switch (rng.int(0, 9)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return numberLiteral(rng.pick(EDGE_NUMBERS));
    case 3:
      return "";
    case 4:
      return "x".repeat(rng.pick([1000, 70_000]));
    case 5: {
      let v: Json = rng.pick([[], {}, "deep"]);
      for (let i = rng.int(10, 140); i > 0; i--) v = rng.chance(0.5) ? [v] : { a: v };
      return v;
    }
    case 6:
      return [];
    case 7:
      return {};
    case 8:
      return rng.pick(STRINGS);
    default:
      return genName(rng);
  }
}

/** Keys of an object that mutations leave alone (see GenOptions.protect). */
const PROTECTED_KEYS = new WeakMap<object, string[]>();
/** Keys whose value is never replaced or deleted, though what is inside may be mutated. */
const FIXED_KEYS = new WeakMap<object, string[]>();
/** Arrays whose items are never replaced, though what is inside them may be mutated. */
const FIXED_ITEMS = new WeakSet<object>();

/** Every (container, key) pair of a document, for picking a place to mutate. */
function slots(
  doc: Json,
  out: [Json, string | number][] = [],
  depth = 0,
): [Json, string | number][] {
  if (depth > 8 || doc === null || typeof doc !== "object") return out;
  if (Array.isArray(doc)) {
    doc.forEach((v, i) => {
      if (!FIXED_ITEMS.has(doc)) out.push([doc, i]);
      slots(v, out, depth + 1);
    });
  } else {
    const keep: string[] = PROTECTED_KEYS.get(doc) ?? [];
    for (const [k, v] of Object.entries(doc)) {
      if (keep.includes(k)) continue;
      if (!(FIXED_KEYS.get(doc) ?? []).includes(k)) out.push([doc, k]);
      slots(v, out, depth + 1);
    }
  }
  return out;
}

/** Mutates `doc` in place, 1..3 times; returns what was done, for the failure message. */
export function mutate(rng: Rng, doc: Json): string[] {
  const done: string[] = [];
  for (let i = rng.int(1, 3); i > 0; i--) {
    const all = slots(doc);
    if (all.length === 0) break;
    const [container, key] = rng.pick(all);
    const what = rng.int(0, 3);
    if (what === 0 && !Array.isArray(container)) {
      delete container[key];
      done.push(`delete ${String(key)}`);
    } else if (what === 1 && !Array.isArray(container)) {
      const extra = rng.pick(EXTRA_KEYS);
      Object.defineProperty(container, extra, {
        value: wrongValue(rng),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      done.push(`extra key ${JSON.stringify(extra.slice(0, 20))} beside ${String(key)}`);
    } else {
      container[key] = wrongValue(rng);
      done.push(`replace ${String(key)}`);
    }
  }
  return done;
}

/** The JSON text of `doc`, with number literals restored. */
export function serialize(doc: Json): string {
  return JSON.stringify(doc).replace(/"\\u0000lit:([^"]*)"/g, "$1");
}

/** Text-level mutations the object model cannot express. */
export function mutateText(rng: Rng, text: string): { text: string; what: string } {
  switch (rng.int(0, 5)) {
    case 0: {
      // Repeat a top-level key: the first value is a decoy, the last one wins or it is refused.
      const key = rng.pick(["format_version", "mode", "cluster", "suspend_timeout_seconds", "x"]);
      return {
        text: text.replace(/^\{/, `{"${key}":${rng.pick(["1", '"Replica"', "{}", "null"])},`),
        what: `duplicate ${key}`,
      };
    }
    case 1:
      return { text: `\ufeff${text}`, what: "byte order mark" };
    case 2:
      return { text: text.replace(/^\{/, '{"x":"\\ud800",'), what: "lone surrogate" };
    case 3: {
      const n = rng.pick([127, 128, 129, 500]);
      return {
        text: text.replace(/^\{/, `{"x":${"[".repeat(n)}${"]".repeat(n)},`),
        what: `nesting ${n}`,
      };
    }
    case 4:
      return { text: text.slice(0, rng.int(0, text.length - 1)), what: "truncated" };
    default:
      return {
        text: text.replace(
          /^\{/,
          '{"cluster":{"roles":[],"databases":[],"roles":[{"name":"dup"}]},',
        ),
        what: "duplicate nested key",
      };
  }
}

export interface FuzzCase {
  index: number;
  seed: number;
  text: string;
  /** What was done to a valid document ([] when it was left valid). */
  mutations: string[];
}

export interface GenOptions {
  /** Appended to every generated role and database name (keeps cases apart on one cluster). */
  nameSuffix?: string;
  /** Sets fields of the valid spec before mutation (a live stack's addresses, say). */
  overlay?: (spec: Json) => void;
  /** Spec keys mutations leave alone (with everything under them); `cluster.x` for cluster's. */
  protect?: readonly string[];
}

/**
 * Case `index` of the campaign seeded `seed`: a ConfigurationRequest body ({spec,
 * compute_ctl_config}), valid in about half of the cases.
 */
export function genCase(seed: number, index: number, opts: GenOptions = {}): FuzzCase {
  const caseSeed = new Rng(seed ^ Math.imul(index + 1, 0x9e3779b1)).fork();
  const rng = new Rng(caseSeed);
  const spec = genValidSpec(rng, opts.nameSuffix ?? "");
  opts.overlay?.(spec);
  const top = (opts.protect ?? []).filter((k) => !k.startsWith("cluster."));
  const inCluster = (opts.protect ?? [])
    .filter((k) => k.startsWith("cluster."))
    .map((k) => k.slice(8));
  if (top.length) PROTECTED_KEYS.set(spec, top);
  if (inCluster.length) PROTECTED_KEYS.set(spec.cluster, inCluster);
  // Database owners (and the role names they refer to) stay names of the spec's roles: an unknown owner fails the apply in
  // Postgres, which is the control plane's mistake, not a malformed document.
  if (opts.protect?.includes("cluster.databases.owner")) {
    for (const db of spec.cluster.databases) PROTECTED_KEYS.set(db, ["owner"]);
    for (const role of spec.cluster.roles) PROTECTED_KEYS.set(role, ["name"]);
    FIXED_KEYS.set(spec.cluster, ["roles", "databases"]);
    FIXED_ITEMS.add(spec.cluster.roles);
    FIXED_ITEMS.add(spec.cluster.databases);
  }
  const doc: Json = { spec, compute_ctl_config: { jwks: { keys: [] } } };
  const mutations: string[] = [];
  const r = rng.next();
  if (r < 0.45) mutations.push(...mutate(rng, spec));
  else if (r < 0.55) mutations.push(...mutate(rng, doc));
  let text = serialize(doc);
  if (rng.chance(0.12)) {
    const m = mutateText(rng, text);
    text = m.text;
    mutations.push(m.what);
  }
  return { index, seed: caseSeed, text, mutations };
}

export type Outcome = "json" | "schema" | "spec" | "accepted";

/**
 * What /configure must make of `text`, by the same functions its route calls: a JSON syntax
 * error (400), a schema error (422), a ParsedSpec refusal (400), or accepted with its spec.
 * Anything else thrown is a defect and propagates.
 */
export function predict(
  text: string,
  privilegedRoleName = "neon_superuser",
): { outcome: Outcome; error?: Error; body?: ConfigurationRequest; pspec?: ParsedSpec } {
  let body: ConfigurationRequest;
  try {
    body = parseJson(ConfigurationRequest, text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) return { outcome: "json", error: err };
    if (err instanceof SchemaError) return { outcome: "schema", error: err };
    throw new Error(`the decoder threw ${(err as Error).name}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (body.spec === null) return { outcome: "accepted", body };
  try {
    return { outcome: "accepted", body, pspec: parseSpec(body.spec, { privilegedRoleName }) };
  } catch (err) {
    if (err instanceof SchemaError || err instanceof JsonSyntaxError || !(err instanceof Error)) {
      throw new Error(`parseSpec threw ${String(err)}`, { cause: err });
    }
    return { outcome: "spec", error: err, body };
  }
}
