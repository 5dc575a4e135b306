// GET /autoscaling_metrics in-process: relayed from an HTTP server on a unix socket in a fake
// PGDATA (standing in for the neon communicator), including a PGDATA whose socket path is too
// long for sun_path, which goes through a short-lived symlink under $TMPDIR.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { createHttpApp } from "../../../src/http/app.ts";
import { autoscalingMetricsRoutes } from "../../../src/http/routes/autoscaling-metrics.ts";
import { log } from "../../../src/log.ts";
import { COMMUNICATOR_SOCKET_NAME } from "../../../src/postgres/communicator.ts";

let root: string;
let linkDir: string;
const savedTmpdir = process.env.TMPDIR;
const servers: Server<unknown>[] = [];
const seen: { path: string; method: string; host: string | null }[] = [];
/** What $TMPDIR held while each request was being served. */
const linksDuring: string[][] = [];

const METRICS = "# TYPE lfc_hits counter\nlfc_hits 42\n";

/** Serves the communicator's route on a socket bound at `bindPath`, then moved to `finalPath`. */
function startCommunicator(bindPath: string, finalPath = bindPath) {
  const server = Bun.serve({
    unix: bindPath,
    fetch(req) {
      const url = new URL(req.url);
      seen.push({ path: url.pathname, method: req.method, host: req.headers.get("host") });
      linksDuring.push(readdirSync(linkDir));
      if (url.pathname === "/autoscaling_metrics") {
        return new Response(METRICS, {
          headers: { "content-type": "text/plain; version=0.0.4", "x-other": "dropped" },
        });
      }
      return new Response("nope", { status: 404 });
    },
  });
  servers.push(server);
  // A socket stays reachable under a new name: this is how a path longer than sun_path is made.
  if (finalPath !== bindPath) renameSync(bindPath, finalPath);
  return server;
}

function app(pgdata: string) {
  return createHttpApp({ name: "external", logger: log }).use(autoscalingMetricsRoutes({ pgdata }));
}

const get = (pgdata: string) =>
  app(pgdata).handle(new Request("http://localhost/autoscaling_metrics"));

async function expectError(r: Response, status: number, error: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toBe("application/json");
  expect(await r.json()).toEqual({ error });
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "compute_ctl-test-asm-"));
  linkDir = join(root, "tmp");
  mkdirSync(linkDir);
  process.env.TMPDIR = linkDir;
});

afterEach(() => {
  seen.length = 0;
  linksDuring.length = 0;
});

afterAll(async () => {
  for (const s of servers) await s.stop(true);
  if (savedTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmpdir;
  rmSync(root, { recursive: true, force: true });
});

describe("GET /autoscaling_metrics", () => {
  test("relays status, content type and body from the socket in PGDATA", async () => {
    const pgdata = join(root, "short");
    mkdirSync(pgdata);
    startCommunicator(join(pgdata, COMMUNICATOR_SOCKET_NAME));
    const r = await get(pgdata);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/plain; version=0.0.4");
    expect(r.headers.get("x-other")).toBeNull();
    expect(await r.text()).toBe(METRICS);
    expect(seen).toEqual([{ path: "/autoscaling_metrics", method: "GET", host: "localhost" }]);
    // No symlink for a short path.
    expect(linksDuring).toEqual([[]]);
  });

  test("a socket path of 100 bytes or more goes through a symlink that is removed again", async () => {
    let pgdata = join(root, "long");
    while (Buffer.byteLength(join(pgdata, COMMUNICATOR_SOCKET_NAME)) < 140) {
      pgdata = join(pgdata, "a-rather-long-directory-name");
    }
    mkdirSync(pgdata, { recursive: true });
    const socketPath = join(pgdata, COMMUNICATOR_SOCKET_NAME);
    startCommunicator(join(root, "bind.sock"), socketPath);
    for (let i = 0; i < 2; i++) {
      const r = await get(pgdata);
      expect(r.status).toBe(200);
      expect(await r.text()).toBe(METRICS);
    }
    expect(seen.length).toBe(2);
    // Each request had its own symlink while it was served; none is left.
    const [first, second] = linksDuring.map((l) => l.join());
    expect(first).toMatch(new RegExp(`^compute_ctl\\.short-socket\\.${process.pid}\\.\\d+$`));
    expect(second).toMatch(/^compute_ctl\.short-socket\./);
    expect(second).not.toBe(first);
    expect(readdirSync(linkDir)).toEqual([]);
  });

  test("relays the communicator's own error status", async () => {
    const pgdata = join(root, "status");
    mkdirSync(pgdata);
    startCommunicator(join(pgdata, COMMUNICATOR_SOCKET_NAME)).reload({
      fetch: () => new Response("overloaded", { status: 503 }),
    });
    const r = await get(pgdata);
    expect(r.status).toBe(503);
    expect(r.headers.get("content-type")).toBe("text/plain;charset=utf-8");
    expect(await r.text()).toBe("overloaded");
  });

  test("500 when there is no communicator socket (vanilla Postgres)", async () => {
    const pgdata = join(root, "vanilla");
    mkdirSync(pgdata);
    await expectError(
      await get(pgdata),
      500,
      "connecting to communicator control socket: No such file or directory (os error 2)",
    );
    // A file that is not a listening socket.
    writeFileSync(join(pgdata, COMMUNICATOR_SOCKET_NAME), "");
    await expectError(
      await get(pgdata),
      500,
      "connecting to communicator control socket: Connection refused (os error 111)",
    );
  });

  test("500 when the symlink cannot be made; 500 for a missing socket at a long path", async () => {
    const long = join(root, "x".repeat(120));
    mkdirSync(long);
    await expectError(
      await get(long),
      500,
      "connecting to communicator control socket: No such file or directory (os error 2)",
    );
    expect(readdirSync(linkDir)).toEqual([]);
    process.env.TMPDIR = join(root, "missing-tmp");
    try {
      await expectError(await get(long), 500, "No such file or directory (os error 2)");
    } finally {
      process.env.TMPDIR = linkDir;
    }
  });
});
