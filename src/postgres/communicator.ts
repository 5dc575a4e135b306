// The neon communicator's HTTP server on the unix socket in PGDATA (a background worker of the
// neon extension): GET /autoscaling_metrics is relayed to it. On vanilla Postgres there is no
// socket.
import { symlinkSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { osErrorText } from "../errors.ts";
import { log } from "../log.ts";

/** Must match the neon extension's name for it. */
export const COMMUNICATOR_SOCKET_NAME = "neon-communicator.socket";

/**
 * sun_path holds about 100 bytes; Postgres binds with a relative path from PGDATA, but we connect
 * with a full one, so from this length on we go through a short symlink (the reference's limit).
 */
export const SOCKET_PATH_LIMIT = 100;

// Errors that mean the socket could not be reached at all (the reference's connect step).
const CONNECT_CODES = new Set([
  "ENOENT",
  "ECONNREFUSED",
  "EACCES",
  "ENOTSOCK",
  "ENAMETOOLONG",
  "ENOTDIR",
  "FailedToOpenSocket",
]);

let symlinkSeq = 0;

function errorText(err: unknown): string {
  return osErrorText(err) ?? (err instanceof Error ? err.message : String(err));
}

/** Fetches from the communicator socket in `pgdata`; throws an Error whose message is the reason. */
export async function fetchAutoscalingMetrics(pgdata: string): Promise<Response> {
  const socketPath = join(pgdata, COMMUNICATOR_SOCKET_NAME);
  let connectPath = socketPath;
  let symlink: string | null = null;
  if (Buffer.byteLength(socketPath) >= SOCKET_PATH_LIMIT) {
    symlink = join(tmpdir(), `compute_ctl.short-socket.${process.pid}.${++symlinkSeq}`);
    try {
      symlinkSync(socketPath, symlink);
    } catch (err) {
      throw new Error(errorText(err));
    }
    log.info(`created symlink "${symlink}" for socket "${socketPath}", opening it now`);
    connectPath = symlink;
  }
  let upstream: Response;
  try {
    upstream = await fetch("http://localhost/autoscaling_metrics", {
      unix: connectPath,
      // A fresh connection each time, as the reference opens one per request.
      keepalive: false,
    });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && CONNECT_CODES.has(code)) {
      throw new Error(`connecting to communicator control socket: ${errorText(err)}`);
    }
    throw new Error(`fetching metrics from Postgres metrics service: ${errorText(err)}`);
  } finally {
    // The symlink is only needed to connect; leaving it would litter the temp dir.
    if (symlink !== null) {
      try {
        unlinkSync(symlink);
      } catch (err) {
        log.warn(`could not remove symlink "${symlink}" created for socket: ${errorText(err)}`);
      }
    }
  }
  const headers = new Headers();
  const type = upstream.headers.get("content-type");
  if (type !== null) headers.set("content-type", type);
  return new Response(upstream.body, { status: upstream.status, headers });
}
