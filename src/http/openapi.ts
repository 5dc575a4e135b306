// The OpenAPI 3.0 document the servers publish, built from the same TypeBox
// schemas that validate bodies, so it cannot drift from them. TypeBox schemas are JSON Schema
// (2020-12 flavoured); OpenAPI 3.0 takes a dialect of draft 4, so the walk below collects every
// schema with a `$id` as a component and rewrites the keywords 3.0 lacks (`const`, `type: null`
// unions, `patternProperties`, `examples`).
//
// The route table here is the documentation of src/http/routes/*: method, path, server, auth and
// every status the handlers answer. test/unit/http/openapi.test.ts checks it against the routes
// the servers register and against the reference's YAML.
import { Type as T, type TSchema } from "@sinclair/typebox";
import { ConfigurationRequest } from "../api/config.ts";
import { LfcOffloadStateSchema, LfcPrewarmStateSchema } from "../api/lfc.ts";
import { PromoteConfig, PromoteState } from "../api/promote.ts";
import {
  CatalogObjects,
  ConfigureFailpointsRequest,
  ExtensionInstallRequest,
  ExtensionInstallResponse,
  SetRoleGrantsRequest,
  SetRoleGrantsResponse,
} from "../api/requests.ts";
import {
  ComputeMetrics,
  ComputeStatusResponse,
  GenericApiError,
  TerminateResponse,
} from "../api/responses.ts";

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

// --- The route table -------------------------------------------------------------------------------

export type Server = "external" | "internal";
export type Method = "get" | "post" | "delete";

export interface ResponseDoc {
  description: string;
  /** A JSON body of this schema (content type application/json). */
  json?: TSchema;
  /** A body of another content type. */
  content?: { type: string; schema: Json };
}

export interface RouteDoc {
  server: Server;
  /** Behind the JWT guard. */
  auth: boolean;
  method: Method;
  /** The OpenAPI path template. */
  path: string;
  /** The path as Elysia registers it (checked against the servers by the unit test). */
  route: string;
  operationId: string;
  summary: string;
  description?: string;
  parameters?: Json[];
  requestBody?: TSchema;
  responses: Record<number, ResponseDoc>;
}

const error = (description: string): ResponseDoc => ({ description, json: GenericApiError });
const wrongStatus = error(
  "The compute is not in a state that allows this (`invalid compute status: <status>`).",
);
// The reference's Json extractor rejections, shared by every route with a body.
const bodyRejections: Record<number, ResponseDoc> = {
  400: error("The body is not valid JSON."),
  413: error("The body is larger than 2 MiB."),
  415: error("The content type is not application/json."),
  422: error("The body does not have the expected shape."),
};
const empty = (description: string): ResponseDoc => ({ description });

export const ROUTES: RouteDoc[] = [
  {
    server: "external",
    auth: false,
    method: "get",
    path: "/metrics",
    route: "/metrics",
    operationId: "getComputeMetrics",
    summary: "Prometheus metrics in text format.",
    responses: {
      200: {
        description: "Metrics in the Prometheus text format (`text/plain; version=0.0.4`).",
        content: { type: "text/plain", schema: { type: "string" } },
      },
      500: error("The metrics could not be encoded."),
    },
  },
  {
    server: "external",
    auth: false,
    method: "get",
    path: "/autoscaling_metrics",
    route: "/autoscaling_metrics",
    operationId: "getAutoscalingMetrics",
    summary: "The neon communicator's autoscaling metrics, relayed from its socket in PGDATA.",
    description: "Status, content type and body are the communicator's.",
    responses: {
      200: {
        description: "The communicator's answer.",
        content: { type: "text/plain", schema: { type: "string" } },
      },
      500: error("The communicator socket could not be reached."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "get",
    path: "/status",
    route: "/status",
    operationId: "getComputeStatus",
    summary: "The compute's status.",
    responses: { 200: { description: "Status.", json: ComputeStatusResponse } },
  },
  {
    server: "external",
    auth: true,
    method: "get",
    path: "/metrics.json",
    route: "/metrics.json",
    operationId: "getComputeMetricsJSON",
    summary: "Start-up timings and remote extension figures.",
    responses: { 200: { description: "Timings.", json: ComputeMetrics } },
  },
  {
    server: "external",
    auth: true,
    method: "get",
    path: "/insights",
    route: "/insights",
    operationId: "getComputeInsights",
    summary: "The top pg_stat_statements entries.",
    description:
      'A JSON *string* holding JSON text `{"pg_stat_statements": [...]}`, as the reference sends it.',
    responses: {
      200: { description: "Insights as JSON text.", json: T.String() },
      412: wrongStatus,
      500: error("Postgres could not be reached."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "get",
    path: "/dbs_and_roles",
    route: "/dbs_and_roles",
    operationId: "getDbsAndRoles",
    summary: "Every role and database in the catalog.",
    responses: {
      200: { description: "Roles and databases.", json: CatalogObjects },
      500: error("Postgres could not be reached."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "get",
    path: "/database_schema",
    route: "/database_schema",
    operationId: "getDatabaseSchema",
    summary: "A schema-only pg_dump of one database, streamed.",
    parameters: [{ name: "database", in: "query", required: true, schema: { type: "string" } }],
    responses: {
      200: {
        description: "SQL text; labelled application/json, as the reference labels it.",
        content: { type: "application/json", schema: { type: "string" } },
      },
      400: error("`database` is missing or repeated."),
      404: error("The database does not exist."),
      500: error("pg_dump failed."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "post",
    path: "/check_writability",
    route: "/check_writability",
    operationId: "checkComputeWritability",
    summary: "Write a row to prove the timeline takes writes.",
    responses: {
      200: { description: "The JSON literal `true`.", json: T.Literal(true) },
      412: wrongStatus,
      500: error("The write failed."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "post",
    path: "/configure",
    route: "/configure",
    operationId: "configureCompute",
    summary: "Start an empty compute with this spec, or reconfigure a running one.",
    description: "Blocks until the compute is running (200) or failed (500).",
    requestBody: ConfigurationRequest,
    responses: {
      200: { description: "The compute is running.", json: ComputeStatusResponse },
      ...bodyRejections,
      400: error("The body is not valid JSON, or the spec is invalid."),
      412: wrongStatus,
      500: error("The configuration failed."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "post",
    path: "/terminate",
    route: "/terminate",
    operationId: "terminate",
    summary: "Stop Postgres and report the last flushed LSN.",
    parameters: [
      {
        name: "mode",
        in: "query",
        required: false,
        description: "Required when there is a query string at all.",
        schema: { type: "string", enum: ["fast", "immediate"], default: "fast" },
      },
    ],
    responses: {
      200: {
        description:
          "Terminated. In lakebase mode an Empty compute answers 200 with an empty body instead and the process exits 0 five seconds later.",
        json: TerminateResponse,
      },
      201: { description: "Was already terminated.", json: TerminateResponse },
      400: error("Bad `mode`."),
      412: wrongStatus,
      500: error("The shutdown failed."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "get",
    path: "/hadron_liveness_probe",
    route: "/hadron_liveness_probe",
    operationId: "hadronLivenessProbe",
    summary: "Whether Postgres accepts connections (`pg_isready -p <connstr port>`).",
    responses: {
      200: {
        description: 'Postgres accepts connections: the JSON string `"ok"`.',
        content: { type: "application/json", schema: { type: "string", enum: ["ok"] } },
      },
      500: error("pg_isready failed, or the connstr names no port."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "get",
    path: "/lfc/prewarm",
    route: "/lfc/prewarm",
    operationId: "getLfcPrewarmState",
    summary: "The LFC prewarm state.",
    responses: { 200: { description: "Prewarm state.", json: LfcPrewarmStateSchema } },
  },
  {
    server: "external",
    auth: true,
    method: "post",
    path: "/lfc/prewarm",
    route: "/lfc/prewarm",
    operationId: "lfcPrewarm",
    summary: "Start an LFC prewarm.",
    parameters: [
      {
        name: "from_endpoint",
        in: "query",
        required: false,
        description: "Required when there is a query string at all.",
        schema: { type: "string" },
      },
    ],
    responses: {
      202: empty("Started (empty body)."),
      400: error("A query string without `from_endpoint`."),
      429: error("A prewarm is running."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "delete",
    path: "/lfc/prewarm",
    route: "/lfc/prewarm",
    operationId: "cancelLfcPrewarm",
    summary: "Cancel a running LFC prewarm.",
    responses: { 202: empty("Cancelled, or nothing to cancel (empty body).") },
  },
  {
    server: "external",
    auth: true,
    method: "get",
    path: "/lfc/offload",
    route: "/lfc/offload",
    operationId: "getLfcOffloadState",
    summary: "The LFC offload state.",
    responses: { 200: { description: "Offload state.", json: LfcOffloadStateSchema } },
  },
  {
    server: "external",
    auth: true,
    method: "post",
    path: "/lfc/offload",
    route: "/lfc/offload",
    operationId: "lfcOffload",
    summary: "Start an LFC offload.",
    responses: {
      202: empty("Started (empty body)."),
      429: error("An offload is running."),
    },
  },
  {
    server: "external",
    auth: true,
    method: "post",
    path: "/promote",
    route: "/promote",
    operationId: "promoteReplica",
    summary: "Promote this replica to primary (once per process; later calls get the result).",
    requestBody: PromoteConfig,
    responses: {
      200: { description: "Promotion completed.", json: PromoteState },
      ...bodyRejections,
      400: error("The body is not valid JSON, or the spec is invalid."),
      500: { description: "Promotion failed.", json: PromoteState },
    },
  },
  {
    server: "internal",
    auth: false,
    method: "post",
    path: "/grants",
    route: "/grants",
    operationId: "setRoleGrants",
    summary: "Grant privileges on a schema to a role.",
    requestBody: SetRoleGrantsRequest,
    responses: {
      201: { description: "Granted; the request echoed.", json: SetRoleGrantsResponse },
      ...bodyRejections,
      412: wrongStatus,
      500: error("The grant failed."),
    },
  },
  {
    server: "internal",
    auth: false,
    method: "post",
    path: "/extensions",
    route: "/extensions",
    operationId: "installExtension",
    summary: "Install or update an extension in a database.",
    requestBody: ExtensionInstallRequest,
    responses: {
      201: { description: "Installed.", json: ExtensionInstallResponse },
      ...bodyRejections,
      412: wrongStatus,
      500: error("The installation failed."),
    },
  },
  {
    server: "internal",
    auth: false,
    method: "post",
    path: "/extension_server/{filename}",
    route: "/extension_server/*",
    operationId: "downloadExtension",
    summary: "Download and install a remote extension (called by the neon extension).",
    parameters: [
      {
        name: "filename",
        in: "path",
        required: true,
        description: "The extension or library file; may contain `/`.",
        schema: { type: "string" },
      },
      { name: "is_library", in: "query", required: false, schema: { type: "boolean" } },
    ],
    responses: {
      200: empty("Installed, or already installed (empty body)."),
      400: error("Bad `is_library`."),
      404: error("The extension or library is not allowed or unknown."),
      409: error("The spec has no remote_extensions."),
      412: error("No --remote-ext-base-url, or no spec yet."),
      500: error("The download or the installation failed."),
    },
  },
  {
    server: "internal",
    auth: false,
    method: "post",
    path: "/refresh_configuration",
    route: "/refresh_configuration",
    operationId: "refreshConfiguration",
    summary:
      "Ask for the configuration to be read again (called by Postgres on page request errors).",
    description:
      "Counts the call in pg_cctl_pagestream_request_errors_total. From running, failed or refresh_configuration_pending the compute becomes refresh_configuration_pending and re-reads its configuration; in init nothing changes. Does not wait for the refresh.",
    responses: {
      200: empty("Accepted (empty body)."),
      500: error(
        "The compute is in a status that allows no refresh (`Cannot refresh compute configuration in state <Status>`).",
      ),
    },
  },
  {
    server: "internal",
    auth: false,
    method: "post",
    path: "/failpoints",
    route: "/failpoints",
    operationId: "configureFailpoints",
    summary: "Configure failpoints (only with COMPUTE_CTL_TESTING=1).",
    requestBody: ConfigureFailpointsRequest,
    responses: {
      200: empty("Configured (empty body)."),
      ...bodyRejections,
      400: error("The body is not valid JSON, or a failpoint could not be configured."),
      412: error("Failpoints are not enabled."),
    },
  },
];

/** GET /openapi.json, on both servers (see routes/openapi.ts for why it needs no token). */
export const OPENAPI_ROUTES: RouteDoc[] = (["external", "internal"] as const).map((server) => ({
  server,
  auth: false,
  method: "get",
  path: "/openapi.json",
  route: "/openapi.json",
  operationId: `getOpenApiDocument${server === "external" ? "" : "Internal"}`,
  summary: "This document.",
  responses: {
    200: {
      description: "The OpenAPI document.",
      content: { type: "application/json", schema: { type: "object" } },
    },
  },
}));

export const SERVER_URLS: Record<Server, string> = {
  external: "http://localhost:3080",
  internal: "http://localhost:3081",
};

/**
 * The whole document. Internal routes carry a path-level `servers` override (port 3081); the
 * global security is JWT, as in the reference, and routes without a token say `security: []`.
 * A path served by both servers (only /openapi.json) is listed once, under the external server.
 */
export function buildOpenApiDocument(routes: RouteDoc[] = [...ROUTES, ...OPENAPI_ROUTES]): Json {
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
