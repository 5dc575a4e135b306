// The autoscaler-agent ⇄ vm-monitor protocol, version 1: JSON text frames over a WebSocket.
// The agent opens with a version range; afterwards its messages are adjacently tagged
// (`{"type","content","id"}`) and ours internally tagged (`{"type", ...fields, "id"}`).

/** The only protocol version this monitor speaks. */
export const PROTOCOL_VERSION = 1;

/** A VM size as the agent states it: vCPUs (logged only) and bytes of memory. */
export interface Allocation {
  cpu: number;
  mem: number;
}

export type InboundMessage =
  | { type: "UpscaleNotification"; id: number; granted: Allocation }
  | { type: "DownscaleRequest"; id: number; target: Allocation }
  | { type: "HealthCheck"; id: number }
  | { type: "InvalidMessage"; id: number; error: string }
  | { type: "InternalError"; id: number; error: string };

export type OutboundMessage =
  | { type: "UpscaleRequest"; id: number }
  | { type: "UpscaleConfirmation"; id: number }
  | { type: "DownscaleResult"; id: number; ok: boolean; status: string }
  | { type: "HealthCheck"; id: number }
  | { type: "InternalError"; id: number; error: string };

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

const U8_MAX = 255;
/** JSON integers the agent may send as an id or byte count (they are u64/usize upstream). */
function isUnsigned(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** How a version prints in the error text: v1.0 for the one known, never a recursion. */
function versionText(v: number): string {
  if (v === 0) return "<invalid: zero>";
  if (v === PROTOCOL_VERSION) return "v1.0";
  return `<unknown: ${v}>`;
}

function rangeText(min: number, max: number): string {
  return min === max ? versionText(max) : `${versionText(min)} to ${versionText(max)}`;
}

export type HandshakeOutcome =
  /** Send `reply` and carry on with `version`. */
  | { kind: "agreed"; version: number; reply: string }
  /** Send `reply`, then close: the ranges do not overlap. */
  | { kind: "refused"; reply: string; reason: string };

/**
 * The agent's first frame, `{"min":N,"max":M}` (versions are u8). Throws ProtocolError when it
 * is not a valid range (including min > max): the connection is then closed without a reply.
 */
export function negotiate(text: string): HandshakeOutcome {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ProtocolError("failed to deserialize protocol version range: not JSON");
  }
  if (!isObject(v)) throw new ProtocolError("failed to deserialize protocol version range");
  const { min, max } = v;
  for (const [name, x] of [
    ["min", min],
    ["max", max],
  ] as const) {
    if (!isUnsigned(x) || x > U8_MAX) {
      throw new ProtocolError(
        `failed to deserialize protocol version range: ${name} is ${x === undefined ? "missing" : "not a version (0..=255)"}`,
      );
    }
  }
  const lo = min as number;
  const hi = max as number;
  if (lo > hi) {
    throw new ProtocolError(
      `failed to deserialize protocol version range: min version = ${versionText(lo)} is greater than max version = ${versionText(hi)}`,
    );
  }
  if (lo <= PROTOCOL_VERSION && hi >= PROTOCOL_VERSION) {
    return {
      kind: "agreed",
      version: PROTOCOL_VERSION,
      reply: JSON.stringify({ version: PROTOCOL_VERSION }),
    };
  }
  const error = `Received protocol version range ${rangeText(lo, hi)} which does not overlap with ${rangeText(PROTOCOL_VERSION, PROTOCOL_VERSION)}`;
  return { kind: "refused", reply: JSON.stringify({ error }), reason: error };
}

function allocation(content: Record<string, unknown>, field: string): Allocation {
  const a = content[field];
  if (!isObject(a)) throw new ProtocolError(`missing field \`${field}\``);
  if (typeof a.cpu !== "number" || !Number.isFinite(a.cpu)) {
    throw new ProtocolError(`${field}.cpu is not a number`);
  }
  if (!isUnsigned(a.mem)) throw new ProtocolError(`${field}.mem is not an unsigned integer`);
  return { cpu: a.cpu, mem: a.mem };
}

function errorText(content: Record<string, unknown>): string {
  if (typeof content.error !== "string") throw new ProtocolError("missing field `error`");
  return content.error;
}

/**
 * One agent message after the handshake. Extra keys are ignored; a missing `content` counts as
 * `{}` (the agent always sends it). Throws ProtocolError for anything else: the connection is
 * then closed.
 */
export function parseInbound(text: string): InboundMessage {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ProtocolError("failed to deserialize text message: not JSON");
  }
  if (!isObject(v)) throw new ProtocolError("failed to deserialize text message: not an object");
  if (typeof v.type !== "string") throw new ProtocolError("missing field `type`");
  if (!isUnsigned(v.id)) throw new ProtocolError("missing or invalid field `id`");
  const id = v.id;
  const content = v.content === undefined ? {} : v.content;
  if (!isObject(content)) throw new ProtocolError("`content` is not an object");
  switch (v.type) {
    case "UpscaleNotification":
      return { type: v.type, id, granted: allocation(content, "granted") };
    case "DownscaleRequest":
      return { type: v.type, id, target: allocation(content, "target") };
    case "HealthCheck":
      return { type: v.type, id };
    case "InvalidMessage":
    case "InternalError":
      return { type: v.type, id, error: errorText(content) };
    default:
      throw new ProtocolError(`unknown variant \`${v.type.slice(0, 64)}\``);
  }
}

/** Our message as the agent reads it: the type, the variant's fields at the top level, the id. */
export function serializeOutbound(m: OutboundMessage): string {
  switch (m.type) {
    case "DownscaleResult":
      return JSON.stringify({ type: m.type, Ok: m.ok, Status: m.status, id: m.id });
    case "InternalError":
      return JSON.stringify({ type: m.type, error: m.error, id: m.id });
    default:
      return JSON.stringify({ type: m.type, id: m.id });
  }
}
