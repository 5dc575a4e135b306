// Fetching the compute config from the control plane (`compute_ctl -p <uri>`):
//   GET {base}/compute/api/v2/computes/{compute_id}/spec   with   Authorization: Bearer <token>
// At most 3 attempts, 100 ms apart. Network errors, undecodable bodies, 502 and 503 are retried;
// any other status and an `attached` answer without a spec fail at once. Every attempt counts in
// compute_ctl_cplane_requests_total{rpc="GetConfig", http_status}.
import { ConfigError, formatOneLine } from "../errors.ts";
import { type Logger, log } from "../log.ts";
import { httpStatusLabel, type Metrics } from "../metrics/registry.ts";

/** The body of a 200 answer, as the caller's `decode` returns it (ControlPlaneConfigResponse). */
export type ControlPlaneResponse = {
  status: "empty" | "attached";
  spec: unknown | null;
  compute_ctl_config: unknown;
};

/** What the control plane gave us: the ComputeConfig (`spec` is null in the Empty state). */
export type ControlPlaneConfig = { spec: unknown | null; computeCtlConfig: unknown };

export interface FetchConfigOptions {
  /**
   * `--control-plane-uri`, used verbatim: a trailing `/` gives `...//compute/...` as upstream. Bun's
   * fetch then collapses the leading `//` of the path on the wire, where reqwest sends it as is.
   */
  baseUri: string;
  computeId: string;
  /** NEON_CONTROL_PLANE_TOKEN; the header is sent as `Bearer ` even when this is undefined. */
  token: string | undefined;
  metrics: Pick<Metrics, "cplaneRequests">;
  /** Parses and validates the body; anything it throws counts as a (retried) decode error. */
  decode: (text: string) => ControlPlaneResponse;
  /** Defaults: 3 attempts, 100 ms apart, 30 s per request (reqwest's default timeout). */
  attempts?: number;
  retryDelayMs?: number;
  timeoutMs?: number;
  logger?: Logger;
}

/** The label for a request that got no HTTP status at all. */
export const UNKNOWN_HTTP_STATUS = "unknown";

type Attempt =
  | { ok: true; label: string; response: ControlPlaneResponse }
  | { ok: false; label: string; retry: boolean; error: Error };

async function attemptOnce(
  uri: string,
  authorization: string,
  timeoutMs: number,
  decode: (text: string) => ControlPlaneResponse,
): Promise<Attempt> {
  // One signal for the whole exchange, body included, like reqwest's per-request timeout.
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetch(uri, { method: "GET", headers: { Authorization: authorization }, signal });
  } catch (e) {
    return {
      ok: false,
      label: UNKNOWN_HTTP_STATUS,
      retry: true,
      error: new Error("could not perform request to control plane", { cause: e }),
    };
  }
  // Upstream labels with the `http` crate's canonical reason, not the server's reason phrase.
  const label = httpStatusLabel(res.status);
  if (res.status === 200) {
    try {
      const response = decode(await res.text());
      if (response.status !== "empty" && response.status !== "attached") {
        throw new Error(`unknown control plane compute status ${JSON.stringify(response.status)}`);
      }
      return { ok: true, label, response };
    } catch (e) {
      // The status is known, so a bad body is still labelled "200 OK" (as upstream).
      return {
        ok: false,
        label,
        retry: true,
        error: new Error("could not deserialize control plane response", { cause: e }),
      };
    }
  }
  // The body of a failed answer is never read; release the connection.
  await res.body?.cancel().catch(() => {});
  if (res.status === 503) {
    return {
      ok: false,
      label,
      retry: true,
      error: new Error("control plane is temporarily unavailable"),
    };
  }
  if (res.status === 502) {
    // Intermittent 502s from the control plane's proxies are known upstream; a GET is safe to retry.
    return {
      ok: false,
      label,
      retry: true,
      error: new Error("control plane request failed with 502"),
    };
  }
  // 404 (unknown compute), 500 and the rest: retrying will not help.
  return {
    ok: false,
    label,
    retry: false,
    error: new Error(`unexpected control plane response status code: ${label}`),
  };
}

/**
 * Gets the ComputeConfig of `computeId` from the control plane. Throws a ConfigError (exit 1):
 * at once for a non-retryable answer, or "Exhausted all attempts ..." with the last error as cause.
 */
export async function fetchConfigFromControlPlane(
  opts: FetchConfigOptions,
): Promise<ControlPlaneConfig> {
  const attempts = opts.attempts ?? 3;
  const retryDelayMs = opts.retryDelayMs ?? 100;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const logger = opts.logger ?? log;
  const uri = `${opts.baseUri}/compute/api/v2/computes/${opts.computeId}/spec`;
  const authorization = `Bearer ${opts.token ?? ""}`;

  logger.info(`getting config from control plane: ${uri}`);
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) await Bun.sleep(retryDelayMs);
    const result = await attemptOnce(uri, authorization, timeoutMs, opts.decode);
    opts.metrics.cplaneRequests.inc({ rpc: "GetConfig", http_status: result.label });
    if (result.ok) {
      const { status, spec, compute_ctl_config } = result.response;
      if (status === "attached" && (spec === null || spec === undefined)) {
        throw new ConfigError("compute is attached, but spec is empty");
      }
      // As upstream, `empty` passes through whatever spec came with it (normally null).
      return { spec: spec ?? null, computeCtlConfig: compute_ctl_config };
    }
    if (!result.retry) throw new ConfigError(result.error.message);
    lastError = result.error;
    logger.error(`attempt ${attempt} to get config failed with: ${formatOneLine(result.error)}`);
    // Upstream also sleeps after the last failed attempt; that only delays the exit, so we don't.
  }
  throw new ConfigError("Exhausted all attempts to retrieve the config from the control plane", {
    cause: lastError,
  });
}
