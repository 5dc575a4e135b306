// Addressing and HTTP for endpoint storage, the peer that keeps each endpoint's LFC state:
// `http://{addr}/{tenant}/{timeline}/{endpoint}/lfc_state` with an opaque bearer token. One request per call, no retries, like the reference, but with a timeout.
import type { ParsedSpec } from "../api/parsed-spec.ts";
import { readAllBounded } from "../util/streams.ts";

const KEY = "lfc_state";

export interface StorageTarget {
  url: string;
  token: string;
}

/**
 * The URL and token for `fromEndpoint` (verbatim, not URL-encoded, as the reference does) or the
 * spec's own endpoint. Throws the reference's texts for missing pieces; without any spec it
 * throws instead of panicking (the reference's task panics and the state sticks).
 */
export function storageTarget(pspec: ParsedSpec | null, fromEndpoint?: string): StorageTarget {
  if (!pspec) throw new Error("compute spec missing");
  const endpointId = fromEndpoint ?? pspec.spec.endpoint_id;
  if (endpointId === null || endpointId === undefined) {
    throw new Error("pspec.endpoint_id missing, other endpoint_id not provided");
  }
  const addr = pspec.endpointStorageAddr;
  if (!addr) throw new Error("pspec.endpoint_storage_addr missing");
  // Always present in a parsed spec; checked so a hand-made one cannot produce `//` URLs.
  if (!pspec.tenantId) throw new Error("pspec.tenant_id missing");
  if (!pspec.timelineId) throw new Error("pspec.timeline_id missing");
  const token = pspec.endpointStorageToken;
  if (token === null || token === undefined)
    throw new Error("pspec.endpoint_storage_token missing");
  return {
    url: `http://${addr}/${pspec.tenantId}/${pspec.timelineId}/${endpointId}/${KEY}`,
    token,
  };
}

/**
 * `fetch` bounded by `timeoutMs` (headers and body alike: the signal stays armed while the body
 * is read) and by `abort`. A timeout becomes a readable error; an abort is rethrown as is, for
 * the caller to tell cancellation from failure by looking at its own signal.
 */
export async function storageFetch(
  target: StorageTarget,
  init: { method: "GET" | "PUT"; body?: Uint8Array },
  opts: { timeoutMs: number; abort: AbortSignal },
): Promise<{ response: Response; signal: AbortSignal }> {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = AbortSignal.any([opts.abort, timeout]);
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${target.token}` };
    let body: ReadableStream<Uint8Array> | undefined;
    if (init.body) {
      // Slices with an explicit length: the same Content-Length request as a byte body, but Bun
      // sends a large byte body about half as fast as a stream of slices (measured in bench/lfc).
      headers["content-length"] = String(init.body.byteLength);
      body = sliced(init.body);
    }
    const response = await fetch(target.url, {
      method: init.method,
      // No content-type, as the reference sends none.
      body,
      headers,
      signal,
      // Endpoint storage never redirects; a redirect is an error status here, and the token
      // cannot follow it anywhere.
      redirect: "manual",
      // A fresh connection per request, like the reference's fresh client per request.
      keepalive: false,
    });
    return { response, signal };
  } catch (err) {
    throw transportError(err, target.url, timeout, opts.timeoutMs);
  }
}

const SLICE = 1 << 20;

function sliced(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(controller) {
      if (off >= bytes.byteLength) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(off, off + SLICE));
      off += SLICE;
    },
  });
}

/**
 * Reads the whole body, with the same bounds as the request that produced it; past `maxBytes`
 * the rest is not read and the read fails.
 */
export async function readBody(
  response: Response,
  signal: AbortSignal,
  timeoutMs: number,
  maxBytes = Number.POSITIVE_INFINITY,
): Promise<Uint8Array> {
  try {
    if (!response.body) return new Uint8Array(0);
    return await readAllBounded(
      response.body,
      maxBytes,
      () => new Error(`endpoint storage sent more than ${maxBytes} bytes`),
    );
  } catch (err) {
    throw signal.aborted && isTimeout(signal.reason)
      ? new Error(`timed out after ${timeoutMs} ms`)
      : err;
  }
}

function isTimeout(reason: unknown): boolean {
  return reason instanceof DOMException && reason.name === "TimeoutError";
}

function transportError(err: unknown, url: string, timeout: AbortSignal, ms: number): Error {
  if (timeout.aborted)
    return new Error(`error sending request for url (${url}): timed out after ${ms} ms`);
  if (err instanceof DOMException && err.name === "AbortError") return err;
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  const detail =
    typeof code === "string" && !message.includes(code) ? `${message} (${code})` : message;
  // Flattened on purpose: Bun's fetch errors repeat themselves in their causes.
  return new Error(`error sending request for url (${url}): ${detail}`);
}
