import { describe, expect, test } from "bun:test";
import {
  ComputeConfig,
  ComputeCtlConfig,
  ConfigurationRequest,
  ControlPlaneConfigResponse,
} from "../../../src/api/config.ts";
import { decode } from "../../../src/api/decode.ts";
import { type Json, minimalSpec, schemaError } from "./helpers.ts";

const JWK = {
  kty: "OKP",
  crv: "Ed25519",
  x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
  kid: "k1",
};
const ctlConfig = (): Json => ({ jwks: { keys: [JWK] } });
const problem = (schema: Parameters<typeof decode>[0], doc: Json) =>
  schemaError(() => decode(schema, doc)).message;

describe("ComputeCtlConfig", () => {
  test("jwks is required, tls is optional and nullable", () => {
    expect(decode(ComputeCtlConfig, ctlConfig())).toEqual({ jwks: { keys: [JWK] }, tls: null });
    expect(decode(ComputeCtlConfig, { ...ctlConfig(), tls: null }).tls).toBeNull();
    const tls = { key_path: "/tls/key", cert_path: "/tls/cert" };
    expect(decode(ComputeCtlConfig, { ...ctlConfig(), tls }).tls).toEqual(tls);
    expect(problem(ComputeCtlConfig, { tls: null })).toBe("jwks: missing field");
    expect(problem(ComputeCtlConfig, { jwks: {} })).toBe("jwks.keys: missing field");
  });

  test("a JWK is an open record, kept whole, but must be an object", () => {
    const odd = { kty: "RSA", n: "abc", e: "AQAB", ext: { nested: [1, null] } };
    expect(decode(ComputeCtlConfig, { jwks: { keys: [odd] } }).jwks.keys[0]).toEqual(odd);
    expect(problem(ComputeCtlConfig, { jwks: { keys: [JWK, "k"] } })).toBe(
      'jwks.keys[1]: expected a JWK object, got "k"',
    );
    expect(problem(ComputeCtlConfig, { jwks: { keys: [[]] } })).toBe(
      "jwks.keys[0]: expected a JWK object, got an array",
    );
  });

  test("tls needs both paths", () => {
    expect(problem(ComputeCtlConfig, { ...ctlConfig(), tls: { key_path: "/k" } })).toBe(
      "tls.cert_path: missing field",
    );
    expect(problem(ComputeCtlConfig, { ...ctlConfig(), tls: "yes" })).toBe(
      'tls: expected an object, got "yes"',
    );
  });
});

describe("ComputeConfig (--config file)", () => {
  test("spec may be absent or null, compute_ctl_config is required", () => {
    expect(decode(ComputeConfig, { compute_ctl_config: ctlConfig() }).spec).toBeNull();
    expect(decode(ComputeConfig, { spec: null, compute_ctl_config: ctlConfig() }).spec).toBeNull();
    const c = decode(ComputeConfig, { spec: minimalSpec(), compute_ctl_config: ctlConfig() });
    expect(c.spec?.tenant_id).toBe(minimalSpec().tenant_id);
    expect(problem(ComputeConfig, { spec: minimalSpec() })).toBe(
      "compute_ctl_config: missing field",
    );
  });

  test("errors inside the spec carry the spec. prefix", () => {
    const spec = minimalSpec();
    spec.cluster.roles = [{}];
    expect(problem(ComputeConfig, { spec, compute_ctl_config: ctlConfig() })).toBe(
      "spec.cluster.roles[0].name: missing field",
    );
  });
});

describe("ConfigurationRequest (/configure body)", () => {
  test("both keys are required", () => {
    expect(problem(ConfigurationRequest, { spec: minimalSpec() })).toBe(
      "compute_ctl_config: missing field",
    );
    expect(problem(ConfigurationRequest, { compute_ctl_config: ctlConfig() })).toBe(
      "spec: missing field",
    );
    expect(problem(ConfigurationRequest, { spec: null, compute_ctl_config: ctlConfig() })).toBe(
      "spec: expected an object, got null",
    );
  });

  test("a problem inside the spec is reported before a missing sibling", () => {
    expect(
      problem(ConfigurationRequest, {
        spec: { ...minimalSpec(), offload_lfc_interval_seconds: 0 },
      }),
    ).toBe("spec.offload_lfc_interval_seconds: expected a non-zero integer, got 0");
  });

  test("a valid request decodes", () => {
    const r = decode(ConfigurationRequest, {
      spec: minimalSpec(),
      compute_ctl_config: ctlConfig(),
    });
    expect(r.spec.mode).toBe("Primary");
    expect(r.compute_ctl_config.jwks.keys).toHaveLength(1);
  });
});

describe("ControlPlaneConfigResponse", () => {
  test("empty without a spec, attached with one", () => {
    const empty = decode(ControlPlaneConfigResponse, {
      status: "empty",
      spec: null,
      compute_ctl_config: ctlConfig(),
    });
    expect(empty.status).toBe("empty");
    expect(empty.spec).toBeNull();
    const attached = decode(ControlPlaneConfigResponse, {
      status: "attached",
      spec: minimalSpec(),
      compute_ctl_config: ctlConfig(),
    });
    expect(attached.status).toBe("attached");
    expect(attached.spec?.suspend_timeout_seconds).toBe(minimalSpec().suspend_timeout_seconds);
  });

  test("status is required and snake_case", () => {
    expect(
      problem(ControlPlaneConfigResponse, { spec: null, compute_ctl_config: ctlConfig() }),
    ).toBe("status: missing field");
    expect(
      problem(ControlPlaneConfigResponse, { status: "Attached", compute_ctl_config: ctlConfig() }),
    ).toBe('status: unknown variant "Attached", expected "empty" or "attached"');
  });
});
