// The OpenAPI 3.0 document the servers publish, built from the same TypeBox
// schemas that validate bodies, so it cannot drift from them. TypeBox schemas are JSON Schema
// (2020-12 flavoured); OpenAPI 3.0 takes a dialect of draft 4, so the walk below collects every
// schema with a `$id` as a component and rewrites the keywords 3.0 lacks (`const`, `type: null`
// unions, `patternProperties`, `examples`).
//
// The operations come from the routes the servers register: each route carries its description
// (route-doc.ts). test/unit/http/openapi.test.ts checks the document against the reference's YAML.
import type { TSchema } from "@sinclair/typebox";
import { type OperationDoc, operationOf } from "./route-doc.ts";

type Json = Record<string, unknown>;

// --- TypeBox (JSON Schema 2020-12) → OpenAPI 3.0 Schema Object -----------------------------------

const COMPONENT_PREFIX = "#/components/schemas/";

/** Collects `$id` schemas as components while converting; one per document. */
export class SchemaCollector {
  readonly components: Record<string, Json> = {};
  // The TypeBox object each component came from: one `$id` must not name two different schemas.
  private readonly sources = new Map<string, string>();

  /** `schema` as an OpenAPI 3.0 schema; a schema with `$id` becomes a `$ref` to its component. */
  ref(schema: TSchema): Json {
    return this.convert(schema as unknown as Json, false);
  }

  private convert(schema: Json, asComponentBody: boolean): Json {
    const id = schema.$id;
    if (typeof id === "string" && !asComponentBody) {
      // `defaulted(X, v)` clones X with its `$id`: the default belongs to the field, not to X.
      const { default: fieldDefault, ...body } = schema;
      const text = JSON.stringify(body);
      const seen = this.sources.get(id);
      if (seen === undefined) {
        this.sources.set(id, text);
        // Placeholder first, so a recursive schema refers to itself instead of looping.
        this.components[id] = {};
        this.components[id] = this.convert(body, true);
      } else if (seen !== text) {
        throw new Error(`two different schemas share $id ${id}`);
      }
      const ref = { $ref: COMPONENT_PREFIX + id };
      // Siblings of a $ref are ignored in 3.0, hence the allOf.
      return fieldDefault === undefined ? ref : { allOf: [ref], default: fieldDefault };
    }
    if (Array.isArray(schema.anyOf)) return this.union(schema);
    const out: Json = {};
    for (const [key, value] of Object.entries(schema)) {
      switch (key) {
        case "$id":
        case "$schema":
          break;
        case "const":
          out.enum = [value];
          break;
        case "examples":
          // 3.0 has a single `example` on a schema.
          if (Array.isArray(value) && value.length > 0) out.example = value[0];
          break;
        case "required":
          // src/api marks every property required (a decoded document has them all); a client
          // may leave out those with a default, so they are not required here.
          out.required = (value as string[]).filter((name) => {
            const prop = (schema.properties as Record<string, Json> | undefined)?.[name];
            return prop === undefined || !("default" in prop);
          });
          if ((out.required as string[]).length === 0) delete out.required;
          break;
        case "properties":
          out.properties = Object.fromEntries(
            Object.entries(value as Record<string, Json>).map(([k, v]) => [
              k,
              this.convert(v, false),
            ]),
          );
          break;
        case "items":
          out.items = this.convert(value as Json, false);
          break;
        case "patternProperties": {
          // 3.0 has no patternProperties: a map's values go in additionalProperties, and the key
          // pattern is kept as an extension for readers.
          const entries = Object.entries(value as Record<string, Json>);
          if (entries.length !== 1) throw new Error("patternProperties with several patterns");
          const [pattern, valueSchema] = entries[0]!;
          out.additionalProperties = this.convert(valueSchema, false);
          if (pattern !== "^(.*)$") out["x-key-pattern"] = pattern;
          break;
        }
        case "additionalProperties":
          // Already set from patternProperties: that one carries the value schema.
          if (!("additionalProperties" in out)) {
            out.additionalProperties =
              typeof value === "object" && value !== null
                ? this.convert(value as Json, false)
                : value;
          }
          break;
        default:
          out[key] = value;
      }
    }
    return out;
  }

  /**
   * anyOf: null members become `nullable: true`, string/number literals are merged into one
   * `enum`, and what remains is a single schema or an `anyOf`.
   */
  private union(schema: Json): Json {
    const { anyOf, $id: _id, ...annotations } = schema as { anyOf: Json[]; $id?: unknown };
    let nullable = false;
    const literals = new Map<string, unknown[]>();
    const others: Json[] = [];
    for (const member of anyOf) {
      if (member.type === "null") nullable = true;
      else if ("const" in member && typeof member.type === "string" && member.$id === undefined) {
        const list = literals.get(member.type) ?? [];
        list.push(member.const);
        literals.set(member.type, list);
      } else others.push(this.convert(member, false));
    }
    const members: Json[] = [
      ...[...literals].map(([type, values]) => ({ type, enum: values })),
      ...others,
    ];
    let out: Json;
    if (members.length === 1) {
      const only = members[0]!;
      // Siblings of a $ref are ignored in 3.0: wrap it to attach `nullable` or annotations.
      out =
        "$ref" in only && (nullable || Object.keys(annotations).length > 0)
          ? { allOf: [only] }
          : { ...only };
    } else {
      out = { anyOf: members };
    }
    if (nullable) out.nullable = true;
    for (const [key, value] of Object.entries(annotations)) {
      if (key === "examples") {
        if (Array.isArray(value) && value.length > 0) out.example = value[0];
      } else if (key !== "$schema") out[key] = value;
    }
    return out;
  }
}

// --- The routes, as the servers register them -----------------------------------------------------

export type Server = "external" | "internal";
export type Method = "get" | "post" | "delete";

/** A registered route with its description (route-doc.ts) and where it is served. */
export interface RouteDoc extends OperationDoc {
  server: Server;
  /** Behind the JWT guard. */
  auth: boolean;
  method: Method;
  /** The OpenAPI path template. */
  path: string;
  /** The path as Elysia registers it. */
  route: string;
}

interface RegisteredRoute {
  method: string;
  path: string;
  hooks?: { detail?: unknown; beforeHandle?: unknown[] };
}

/**
 * The described routes `app` registers, in registration order. A route behind the JWT guard has a
 * beforeHandle hook. The path template names a trailing `*` after the route's one path
 * parameter. A route without a description is an error: every route is documented.
 */
export function registeredRoutes(app: { routes: unknown[] }, server: Server): RouteDoc[] {
  return (app.routes as RegisteredRoute[]).map((r) => {
    const doc = operationOf(r.hooks?.detail);
    if (doc === undefined) {
      throw new Error(`${server} ${r.method} ${r.path} is registered without a description`);
    }
    const pathParam = doc.parameters?.find((p) => p.in === "path")?.name;
    const path =
      pathParam === undefined
        ? r.path
        : r.path.replace(/\/\*$/, `/{${pathParam}}`).replace(/:(\w+)/g, "{$1}");
    return {
      ...doc,
      server,
      auth: (r.hooks?.beforeHandle?.length ?? 0) > 0,
      method: r.method.toLowerCase() as Method,
      path,
      route: r.path,
    };
  });
}

/**
 * The document's order: the external server's routes, then the internal server's, each in
 * registration order; a route both servers register (/openapi.json) comes last, listed once.
 */
export function documentOrder(external: RouteDoc[], internal: RouteDoc[]): RouteDoc[] {
  const key = (r: RouteDoc) => `${r.method} ${r.route}`;
  const inExternal = new Set(external.map(key));
  const shared = new Set(internal.map(key).filter((k) => inExternal.has(k)));
  const isShared = (r: RouteDoc) => shared.has(key(r));
  return [
    ...external.filter((r) => !isShared(r)),
    ...internal.filter((r) => !isShared(r)),
    ...external.filter(isShared),
    ...internal.filter(isShared),
  ];
}

export const SERVER_URLS: Record<Server, string> = {
  external: "http://localhost:3080",
  internal: "http://localhost:3081",
};

/**
 * The whole document. Internal routes carry a path-level `servers` override (port 3081); the
 * global security is JWT, as in the reference, and routes without a token say `security: []`.
 * A path served by both servers (only /openapi.json) is listed once, under the external server.
 */
export function buildOpenApiDocument(routes: RouteDoc[]): Json {
  const schemas = new SchemaCollector();
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const item = paths[r.path] ?? {};
    paths[r.path] = item;
    if (item[r.method] !== undefined) continue;
    if (r.server === "internal") item.servers = [{ url: SERVER_URLS.internal }];
    const op: Json = { operationId: r.operationId, summary: r.summary, "x-server": r.server };
    if (r.description !== undefined) op.description = r.description;
    if (!r.auth) op.security = [];
    if (r.parameters) op.parameters = r.parameters;
    if (r.requestBody) {
      op.requestBody = {
        required: true,
        content: { "application/json": { schema: schemas.ref(r.requestBody) } },
      };
    }
    const responses: Json = {};
    for (const [code, res] of Object.entries(r.responses)) {
      const out: Json = { description: res.description };
      if (res.json) out.content = { "application/json": { schema: schemas.ref(res.json) } };
      else if (res.content) out.content = { [res.content.type]: { schema: res.content.schema } };
      responses[code] = out;
    }
    op.responses = responses;
    item[r.method] = op;
  }
  return {
    openapi: "3.0.3",
    info: {
      title: "Compute node control API",
      version: "1.0",
      description:
        "compute_ctl's two HTTP servers: external (control plane; JWT except where `security` is " +
        "empty) and internal (the neon extension and local_proxy; no auth). `x-server` names " +
        "the server of each operation.",
    },
    servers: [{ url: SERVER_URLS.external, description: "external" }],
    paths,
    components: {
      securitySchemes: {
        JWT: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description:
            "EdDSA (or RS256) token verified against compute_ctl_config.jwks. Failures answer " +
            '400 (no bearer token), 401 (not verified) or 403 (wrong compute_id), body {"error": …}.',
        },
      },
      schemas: schemas.components,
    },
    security: [{ JWT: [] }],
  };
}
