// Bodies of the smaller API routes (libs/compute_api/src/{requests,responses,privilege}.rs and the
// failpoints route): field names and order as the reference serialises them. Decode request
// bodies with `parseJson()` from ./decode.ts (unknown fields are ignored, as serde does).
import { type Static, Type as T } from "@sinclair/typebox";
import { GenericOptions, Role, X_EXPECTED } from "./spec.ts";

/** The reference's Privilege enum, upper-case on the wire. */
export const PRIVILEGES = [
  "SELECT",
  "INSERT",
  "UPDATE",
  "DELETE",
  "TRUNCATE",
  "REFERENCES",
  "TRIGGER",
  "USAGE",
  "CREATE",
  "CONNECT",
  "TEMPORARY",
  "EXECUTE",
] as const;
export type Privilege = (typeof PRIVILEGES)[number];

export const Privilege = T.Union(
  PRIVILEGES.map((p) => T.Literal(p)),
  { $id: "Privilege", [X_EXPECTED]: `one of ${PRIVILEGES.join(", ")}` },
);

/** POST /grants. */
export const SetRoleGrantsRequest = T.Object(
  {
    database: T.String(),
    schema: T.String(),
    privileges: T.Array(Privilege),
    role: T.String(),
  },
  { $id: "SetRoleGrantsRequest" },
);
export type SetRoleGrantsRequest = Static<typeof SetRoleGrantsRequest>;

/** The 201 answer of /grants: the request echoed, in this field order. */
export const SetRoleGrantsResponse = T.Object(
  {
    database: T.String(),
    schema: T.String(),
    privileges: T.Array(Privilege),
    role: T.String(),
  },
  { $id: "SetRoleGrantsResponse" },
);
export type SetRoleGrantsResponse = Static<typeof SetRoleGrantsResponse>;

/** POST /extensions. */
export const ExtensionInstallRequest = T.Object(
  {
    extension: T.String(),
    database: T.String(),
    version: T.String(),
  },
  { $id: "ExtensionInstallRequest" },
);
export type ExtensionInstallRequest = Static<typeof ExtensionInstallRequest>;

export const ExtensionInstallResponse = T.Object(
  {
    extension: T.String(),
    version: T.String(),
  },
  { $id: "ExtensionInstallResponse" },
);
export type ExtensionInstallResponse = Static<typeof ExtensionInstallResponse>;

/** A database as /dbs_and_roles reports it: the spec's Database plus the two derived flags. */
export const CatalogDatabase = T.Object(
  {
    name: T.String(),
    owner: T.String(),
    options: GenericOptions,
    restrict_conn: T.Boolean(),
    invalid: T.Boolean(),
  },
  { $id: "CatalogDatabase" },
);
export type CatalogDatabase = Static<typeof CatalogDatabase>;

/** GET /dbs_and_roles. `options` is always null in both lists. */
export const CatalogObjects = T.Object(
  {
    roles: T.Array(Role),
    databases: T.Array(CatalogDatabase),
  },
  { $id: "CatalogObjects" },
);
export type CatalogObjects = Static<typeof CatalogObjects>;

/** One entry of POST /failpoints: `actions` in fail-crate syntax, or `exit`. */
export const FailpointConfig = T.Object(
  {
    name: T.String(),
    actions: T.String(),
  },
  { $id: "FailpointConfig" },
);
export type FailpointConfig = Static<typeof FailpointConfig>;

export const ConfigureFailpointsRequest = T.Array(FailpointConfig, {
  $id: "ConfigureFailpointsRequest",
});
export type ConfigureFailpointsRequest = Static<typeof ConfigureFailpointsRequest>;
