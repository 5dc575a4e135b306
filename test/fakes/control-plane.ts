// A fake control plane: a real HTTP server that serves only
//   GET /compute/api/v2/computes/{compute_id}/spec
// answering a script of responses in order (the last one repeats). It is strict: another method or
// path (including `//compute/...`, which a trailing `/` in the base URI produces, as upstream), a
// query string, a request body or a missing Authorization header gets a 404/401 and a `rejected`
// entry, so a client bug cannot hide behind it. `//` is rejected rather than normalised because the
// fake cannot know what the real control plane's router does with it. (Bun's fetch itself collapses
// a leading `//` to `/` on the wire; node:http and reqwest send it verbatim.)
//
// In-process: `await startFakeControlPlane(script, opts)`.
// Standalone (e2e of the compiled binary): `bun test/fakes/control-plane.ts '<script JSON>' ['<opts JSON>']`
// prints `{"url": ...}` as its first stdout line, then one JSON line per request; SIGTERM/SIGINT stop it.

/** A scripted answer: an HTTP response, a 200 with a body that is not JSON, or a dropped connection. */
export type ScriptEntry =
  | { status: number; body: string; delayMs?: number; headers?: Record<string, string> }
  | "garbage"
  | "hangup";

export interface FakeControlPlaneOptions {
  /** Only this compute id is known; another one gets 404 and a `rejected` entry. */
  computeId?: string;
  /** When set, Authorization must be `Bearer <token>`; otherwise 401 and a `rejected` entry. */
  token?: string;
  hostname?: string;
  port?: number;
  /** Called for every request after it is recorded (the standalone mode prints it). */
  onRequest?: (r: RecordedRequest) => void;
}

export interface RecordedRequest {
  /** High-resolution wall clock in ms (performance.timeOrigin + performance.now()). */
  at: number;
  method: string;
  /** The raw path, as sent (no normalisation of `//`). */
  path: string;
  /** As received; header values carry no surrounding whitespace once parsed: `Bearer ` reads `Bearer`. */
  authorization: string | null;
  /** What the fake did: `503`, `garbage`, `hangup`, or `rejected 404`. */
  answered: string;
  /** Why the request was rejected, for requests outside the protocol. */
  rejected?: string;
}

export interface FakeControlPlane {
  /** Base URI without a trailing slash, e.g. `http://127.0.0.1:40123`. */
  url: string;
  /** Every request that reached the server, accepted or not, in arrival order. */
  requests: RecordedRequest[];
  /** Requests outside the protocol. A test that expects none should assert this is empty. */
  rejected: RecordedRequest[];
  /** Serves `script` from the next request on, from its first entry (the last one repeats). */
  setScript(script: ScriptEntry[]): void;
  stop(): Promise<void>;
}

const SPEC_PATH = /^\/compute\/api\/v2\/computes\/([^/]+)\/spec$/;

/** A 200 whose body is not JSON: the client must treat it as a (retried) decode error. */
export const GARBAGE_BODY = '{"status": "attached", "spec": <html>502 Bad Gateway</html>';

function now(): number {
  return performance.timeOrigin + performance.now();
}

// Bun.serve has no "close this connection" call; a body stream that errors (with no reason, which
// keeps Bun quiet) before its first byte makes Bun drop the socket without writing a status line.
function hangupResponse(): Response {
  return new Response(
    new ReadableStream({
      pull(controller) {
        controller.error();
      },
    }),
  );
}

export async function startFakeControlPlane(
  script: ScriptEntry[],
  opts: FakeControlPlaneOptions = {},
): Promise<FakeControlPlane> {
  if (script.length === 0) throw new Error("fake control plane: empty script");
  let current = script;
  const requests: RecordedRequest[] = [];
  const rejected: RecordedRequest[] = [];
  let next = 0;

  const record = (r: RecordedRequest) => {
    requests.push(r);
    if (r.rejected !== undefined) rejected.push(r);
    opts.onRequest?.(r);
  };

  const server = Bun.serve({
    hostname: opts.hostname ?? "127.0.0.1",
    port: opts.port ?? 0,
    async fetch(req) {
      const at = now();
      const url = new URL(req.url);
      const authorization = req.headers.get("authorization");
      const base = { at, method: req.method, path: url.pathname, authorization };
      const reject = (status: number, reason: string) => {
        record({ ...base, answered: `rejected ${status}`, rejected: reason });
        return new Response(`fake control plane: ${reason}\n`, { status });
      };

      const m = SPEC_PATH.exec(url.pathname);
      if (req.method !== "GET" || !m)
        return reject(404, `no route for ${req.method} ${url.pathname}`);
      if (url.search !== "") return reject(404, `unexpected query string ${url.search}`);
      const length = req.headers.get("content-length");
      if (req.headers.has("transfer-encoding") || (length !== null && length !== "0")) {
        return reject(404, "unexpected request body on GET");
      }
      if (opts.computeId !== undefined && m[1] !== opts.computeId) {
        return reject(404, `unknown compute id ${m[1]}`);
      }
      if (authorization === null) return reject(401, "no Authorization header");
      if (opts.token !== undefined && authorization !== `Bearer ${opts.token}`) {
        return reject(401, `wrong Authorization header ${JSON.stringify(authorization)}`);
      }

      const entry = current[Math.min(next, current.length - 1)] as ScriptEntry;
      next++;
      if (entry === "hangup") {
        record({ ...base, answered: "hangup" });
        return hangupResponse();
      }
      if (entry === "garbage") {
        record({ ...base, answered: "garbage" });
        return new Response(GARBAGE_BODY, { headers: { "content-type": "application/json" } });
      }
      record({ ...base, answered: String(entry.status) });
      if (entry.delayMs) await Bun.sleep(entry.delayMs);
      return new Response(entry.body, {
        status: entry.status,
        headers: { "content-type": "application/json", ...entry.headers },
      });
    },
  });

  return {
    url: `http://${server.hostname}:${server.port}`,
    requests,
    rejected,
    setScript(replacement: ScriptEntry[]) {
      if (replacement.length === 0) throw new Error("fake control plane: empty script");
      current = replacement;
      next = 0;
    },
    async stop() {
      await server.stop(true);
    },
  };
}

/** Standalone entry: argv[2] is the script as JSON, argv[3] optional options as JSON. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const scriptArg = argv[2];
  if (scriptArg === undefined) {
    process.stderr.write("usage: control-plane.ts '<script JSON>' ['<options JSON>']\n");
    process.exit(2);
  }
  const script = JSON.parse(scriptArg) as ScriptEntry[];
  const options = argv[3] ? (JSON.parse(argv[3]) as FakeControlPlaneOptions) : {};
  const fake = await startFakeControlPlane(script, {
    ...options,
    onRequest: (r) => process.stdout.write(`${JSON.stringify({ request: r })}\n`),
  });
  process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`);
  const shutdown = () => {
    void fake.stop().then(() => process.exit(0));
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

if (import.meta.main) await main();
