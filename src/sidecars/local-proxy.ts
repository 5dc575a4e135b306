// local_proxy (the HTTP/JWT SQL path of the compute image) reads /etc/local_proxy/config.json:
// the spec's local_proxy_config with its TLS files. compute_ctl writes the whole file, then sends
// SIGHUP to the running local_proxy, the process that holds the lock on /etc/local_proxy/pid. A
// local_proxy that is not running reads the file when it starts.
import { writeFile } from "node:fs/promises";
import type { LocalProxySpec, TlsConfig } from "../api/spec.ts";
import { log } from "../log.ts";
import { hostPath } from "../util/host.ts";
import { readPidFile } from "./pid-file.ts";

export interface LocalProxyPaths {
  config: string;
  pid: string;
}

export function localProxyPaths(): LocalProxyPaths {
  return {
    config: hostPath("/etc/local_proxy/config.json"),
    pid: hostPath("/etc/local_proxy/pid"),
  };
}

/**
 * The file's text: the spec with its TLS replaced by `tls`, pretty-printed with two-space
 * indentation and no trailing newline; absent (null) top-level keys are left out, a null
 * jwt_audience is written as null.
 */
export function localProxyConfigText(spec: LocalProxySpec, tls: TlsConfig | null): string {
  const doc: Record<string, unknown> = {};
  if (spec.jwks != null) {
    doc.jwks = spec.jwks.map((j) => ({
      id: j.id,
      role_names: j.role_names,
      jwks_url: j.jwks_url,
      provider_name: j.provider_name,
      jwt_audience: j.jwt_audience,
    }));
  }
  if (tls != null) doc.tls = { key_path: tls.key_path, cert_path: tls.cert_path };
  return JSON.stringify(doc, null, 2);
}

/** Writes the config and notifies a running local_proxy. Returns whether one was signalled. */
export async function configureLocalProxy(
  spec: LocalProxySpec,
  tls: TlsConfig | null,
  paths: LocalProxyPaths = localProxyPaths(),
): Promise<boolean> {
  try {
    await writeFile(paths.config, localProxyConfigText(spec, tls));
  } catch (err) {
    throw new Error(`could not write ${paths.config}`, { cause: err });
  }
  const pid = await readPidFile(paths.pid);
  if (pid.kind !== "locked") return false;
  if (pid.pid === null) {
    throw new Error(`${paths.pid} is locked but holds no pid: ${JSON.stringify(pid.content)}`);
  }
  try {
    process.kill(pid.pid, "SIGHUP");
  } catch (err) {
    throw new Error(`could not send SIGHUP to local_proxy (pid ${pid.pid})`, { cause: err });
  }
  log.info(`sent SIGHUP to local_proxy (pid ${pid.pid})`);
  return true;
}
