// Where the compute's configuration comes from: a ComputeConfig file (-c), the older spec file
// (-S: a bare ComputeSpec or a ComputeConfig), or the control plane (-p).
import { type ComputeConfig, ControlPlaneConfigResponse, type JwkSet } from "../api/config.ts";
import { parseJson } from "../api/decode.ts";
import type { TlsConfig } from "../api/spec.ts";
import { loadConfigFile } from "../config/load.ts";
import type { Params } from "../config/params.ts";
import { ConfigError } from "../errors.ts";
import { log } from "../log.ts";
import type { Metrics } from "../metrics/registry.ts";
import { fetchConfigFromControlPlane } from "../storage/control-plane.ts";
import { environment } from "../testing-knobs.ts";

type Spec = ComputeConfig["spec"];

export interface AcquiredConfig {
  spec: NonNullable<Spec> | null;
  /** null when the configuration carries no JWKS (a bare spec): every authenticated route 401s. */
  jwks: JwkSet | null;
  tls: TlsConfig | null;
}

function fromConfig(config: ComputeConfig): AcquiredConfig {
  return {
    spec: config.spec ?? null,
    jwks: config.compute_ctl_config.jwks,
    tls: config.compute_ctl_config.tls ?? null,
  };
}

export async function acquireConfig(params: Params, metrics: Metrics): Promise<AcquiredConfig> {
  if (params.configPath || params.specPath) {
    const loaded = params.configPath
      ? await loadConfigFile(params.configPath, "--config")
      : await loadConfigFile(params.specPath!, "--spec-path");
    if (loaded.kind === "config") return fromConfig(loaded.config);
    log.warn(
      "--spec-path gave a bare compute spec without compute_ctl_config: there is no JWKS, so every authenticated route of the external HTTP API will answer 401",
    );
    return { spec: loaded.spec, jwks: null, tls: null };
  }
  if (params.controlPlaneUri) {
    const response = await fetchConfigFromControlPlane({
      baseUri: params.controlPlaneUri,
      computeId: params.computeId,
      token: environment.controlPlaneToken(),
      metrics,
      decode: (text) => parseJson(ControlPlaneConfigResponse, text),
    });
    return fromConfig({
      spec: response.spec as Spec,
      compute_ctl_config: response.computeCtlConfig as ComputeConfig["compute_ctl_config"],
    });
  }
  // The CLI guarantees one of the three; this guards against a refactoring that drops it.
  throw new ConfigError("one of --config, --control-plane-uri or --spec-path is required");
}
