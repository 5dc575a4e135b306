// ParsedSpec: what start-up and /configure derive from a decoded ComputeSpec before using it
// (the reference's `TryFrom<ComputeSpec> for ParsedSpec` plus `validate`). The order of the
// checks and the error texts are the reference's, because /configure answers 400 with them.
import { catalogNameProblem } from "./catalog-names.ts";
import { reservedRoleProblem } from "./reserved-roles.ts";
import { sidecarValueProblem } from "./sidecar-values.ts";
import {
  type ComputeSpec,
  type GenericOptions,
  type PageserverConnectionInfo,
  shardIndex,
} from "./spec.ts";

export interface PageserverConnInfo {
  /** 0 = unsharded (one shard keyed "0000"); 1 = a sharded tenant with one shard. */
  shardCount: number;
  stripeSize: number | null;
  /** Keyed by ShardIndex "NNCC" (shard number, shard count), lower-case hex. */
  shards: Record<
    string,
    { pageservers: { id: number | null; libpqUrl: string | null; grpcUrl: string | null }[] }
  >;
  preferProtocol: "libpq" | "grpc";
}

export interface ParsedSpec {
  spec: ComputeSpec;
  pageserverConnInfo: PageserverConnInfo;
  safekeeperConnstrings: string[];
  storageAuthToken: string | null;
  tenantId: string;
  timelineId: string;
  endpointStorageAddr: string | null;
  endpointStorageToken: string | null;
}

/** The value of the first setting called `name` (a setting with a null value counts as absent). */
export function findSetting(settings: GenericOptions, name: string): string | null {
  return settings?.find((o) => o.name === name)?.value ?? null;
}

function fromConnectionInfo(info: PageserverConnectionInfo): PageserverConnInfo {
  const shards: PageserverConnInfo["shards"] = {};
  for (const [key, shard] of Object.entries(info.shards)) {
    shards[key] = {
      pageservers: shard.pageservers.map((p) => ({
        id: p.id,
        libpqUrl: p.libpq_url,
        grpcUrl: p.grpc_url,
      })),
    };
  }
  return {
    shardCount: info.shard_count,
    stripeSize: info.stripe_size,
    shards,
    preferProtocol: info.prefer_protocol,
  };
}

/**
 * The legacy comma-separated form: one libpq URL per shard, in shard order. Like the reference,
 * every entry is taken as a libpq URL whatever its scheme.
 */
export function fromConnstring(connstr: string, stripeSize: number | null): PageserverConnInfo {
  const urls = connstr.split(",");
  const shard = (url: string) => ({ pageservers: [{ id: null, libpqUrl: url, grpcUrl: null }] });
  const n = urls.length;
  if (n === 1) {
    // One entry means unsharded, never "sharded with a single shard".
    return {
      shardCount: 0,
      stripeSize: null,
      shards: { "0000": shard(urls[0] ?? "") },
      preferProtocol: "libpq",
    };
  }
  if (stripeSize === null) throw new Error(`${n} shards but no stripe_size`);
  // ShardCount is a u8; the reference's conversion error.
  if (n > 255) throw new Error("out of range integral type conversion attempted");
  const shards: PageserverConnInfo["shards"] = {};
  urls.forEach((url, i) => {
    shards[shardIndex(i, n)] = shard(url);
  });
  return { shardCount: n, stripeSize, shards, preferProtocol: "libpq" };
}

/** Rust's `u32::from_str`, with its error texts. */
export function parseU32(text: string): number {
  const digits = text.startsWith("+") ? text.slice(1) : text;
  if (text === "") throw new Error("cannot parse integer from empty string");
  if (!/^[0-9]+$/.test(digits)) throw new Error("invalid digit found in string");
  const n = Number(digits.replace(/^0+(?=.)/, ""));
  if (digits.replace(/^0+/, "").length > 10 || n > 4294967295) {
    throw new Error("number too large to fit in target type");
  }
  return n;
}

/** TenantId/TimelineId `from_str` (hex crate): 32 hex digits, with the hex crate's errors. */
export function parseHexId(text: string): string {
  if (text.length % 2 !== 0) throw new Error("Odd number of digits");
  if (text.length !== 32) throw new Error("Invalid string length");
  const bad = text.search(/[^0-9A-Fa-f]/);
  if (bad >= 0) throw new Error(`Invalid character '${text[bad]}' at position ${bad}`);
  return text.toLowerCase();
}

function idFromSettings(spec: ComputeSpec, what: "tenant" | "timeline"): string {
  const guc = findSetting(spec.cluster.settings, `neon.${what}_id`);
  if (guc === null) throw new Error(`${what} id should be provided`);
  try {
    return parseHexId(guc);
  } catch (cause) {
    throw new Error(`invalid ${what} id`, { cause });
  }
}

function pageserverInfo(spec: ComputeSpec): PageserverConnInfo {
  if (spec.pageserver_connection_info) return fromConnectionInfo(spec.pageserver_connection_info);
  if (spec.pageserver_connstring !== null) {
    return fromConnstring(spec.pageserver_connstring, spec.shard_stripe_size);
  }
  const guc = findSetting(spec.cluster.settings, "neon.pageserver_connstring");
  if (guc !== null) {
    const stripe = findSetting(spec.cluster.settings, "neon.stripe_size");
    return fromConnstring(guc, stripe === null ? null : parseU32(stripe));
  }
  throw new Error("pageserver connection information should be provided");
}

function safekeepers(spec: ComputeSpec): string[] {
  if (spec.safekeeper_connstrings.length > 0) return [...spec.safekeeper_connstrings];
  // Only a primary talks to safekeepers; the others get an empty list.
  if (spec.mode !== "Primary") return [];
  const guc = findSetting(spec.cluster.settings, "neon.safekeepers");
  if (guc === null) throw new Error("safekeeper connstrings should be provided");
  return guc.split(",");
}

function compareBytes(a: string, b: string): number {
  // Rust sorts Strings by their UTF-8 bytes; JS's default sort uses UTF-16 units.
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** `ParsedSpec::validate`: for a primary, safekeepers must be present and unique. */
export function validateParsedSpec(pspec: ParsedSpec): void {
  if (pspec.spec.mode !== "Primary") return;
  if (pspec.safekeeperConnstrings.length === 0) {
    throw new Error("safekeeper_connstrings is empty");
  }
  const sorted = [...pspec.safekeeperConnstrings].sort(compareBytes);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) {
      throw new Error(`duplicate entry in safekeeper_connstrings: ${sorted[i]}!`);
    }
  }
}

/**
 * Derives and validates a ParsedSpec. Throws a plain Error carrying the reference's text. With
 * `privilegedRoleName`, a spec that manages a reserved role is refused too (reserved-roles.ts).
 */
export function parseSpec(
  spec: ComputeSpec,
  opts: { privilegedRoleName?: string } = {},
): ParsedSpec {
  if (opts.privilegedRoleName !== undefined) {
    const problem = reservedRoleProblem(spec, opts.privilegedRoleName);
    if (problem) throw new Error(problem);
  }
  const nameProblem = catalogNameProblem(spec);
  if (nameProblem) throw new Error(nameProblem);
  const pageserverConnInfo = pageserverInfo(spec);
  const safekeeperConnstrings = safekeepers(spec);
  const storageAuthToken = spec.storage_auth_token;
  const tenantId = spec.tenant_id ?? idFromSettings(spec, "tenant");
  const timelineId = spec.timeline_id ?? idFromSettings(spec, "timeline");
  const settings = spec.cluster.settings;
  const pspec: ParsedSpec = {
    spec,
    pageserverConnInfo,
    safekeeperConnstrings,
    storageAuthToken,
    tenantId,
    timelineId,
    endpointStorageAddr:
      spec.endpoint_storage_addr ?? findSetting(settings, "neon.endpoint_storage_addr"),
    endpointStorageToken:
      spec.endpoint_storage_token ?? findSetting(settings, "neon.endpoint_storage_token"),
  };
  validateParsedSpec(pspec);
  const sidecarProblem = sidecarValueProblem(spec);
  if (sidecarProblem) throw new Error(sidecarProblem);
  return pspec;
}
