// The envelopes around a ComputeSpec: the --config file, the /configure body and the control
// plane's answer (libs/compute_api/src/{responses,requests}.rs).
import { type Static, Type as T } from "@sinclair/typebox";
import { ComputeSpec, option, TlsConfig, X_EXPECTED } from "./spec.ts";

export { TlsConfig } from "./spec.ts";

/**
 * One JSON Web Key. Its members are checked where the key is imported (jose), not here: the
 * reference accepts every key type its JWT library knows, so only "an object" is enforced.
 */
export const Jwk = T.Record(T.String(), T.Unknown(), {
  $id: "Jwk",
  [X_EXPECTED]: "a JWK object",
});
export type Jwk = Static<typeof Jwk>;

export const JwkSet = T.Object({ keys: T.Array(Jwk) }, { $id: "JwkSet" });
export type JwkSet = Static<typeof JwkSet>;

export const ComputeCtlConfig = T.Object(
  {
    jwks: JwkSet,
    tls: option(TlsConfig),
  },
  { $id: "ComputeCtlConfig" },
);
export type ComputeCtlConfig = Static<typeof ComputeCtlConfig>;

/** The --config file body (and what the control plane's answer reduces to). */
export const ComputeConfig = T.Object(
  {
    spec: option(ComputeSpec),
    compute_ctl_config: ComputeCtlConfig,
  },
  { $id: "ComputeConfig" },
);
export type ComputeConfig = Static<typeof ComputeConfig>;

/** The /configure body: both keys required. */
export const ConfigurationRequest = T.Object(
  {
    spec: ComputeSpec,
    compute_ctl_config: ComputeCtlConfig,
  },
  { $id: "ConfigurationRequest" },
);
export type ConfigurationRequest = Static<typeof ConfigurationRequest>;

export const ControlPlaneComputeStatus = T.Union([T.Literal("empty"), T.Literal("attached")], {
  $id: "ControlPlaneComputeStatus",
});
export type ControlPlaneComputeStatus = Static<typeof ControlPlaneComputeStatus>;

/** GET {base}/compute/api/v2/computes/{id}/spec. "attached" with a null spec is the caller's error. */
export const ControlPlaneConfigResponse = T.Object(
  {
    spec: option(ComputeSpec),
    status: ControlPlaneComputeStatus,
    compute_ctl_config: ComputeCtlConfig,
  },
  { $id: "ControlPlaneConfigResponse" },
);
export type ControlPlaneConfigResponse = Static<typeof ControlPlaneConfigResponse>;
