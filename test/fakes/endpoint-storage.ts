// A strict in-process endpoint storage: GET/PUT/DELETE of
// /{tenant}/{timeline}/{endpoint}/lfc_state with a bearer token, answered as the real service
// answers, plus knobs for tests (forced statuses, delays) and a timestamped request log.
// Strict: a request compute_ctl must never send (another key, another method, a malformed id,
// a content-type on PUT, no token) is answered 400 and recorded in `violations`, so a test can
// assert there were none.
//
// Standalone: `bun test/fakes/endpoint-storage.ts [--token T] [--port N]` prints {"port":N}.

/** Claims a token carries; GET only compares tenant and timeline (any endpoint may read). */
export interface TokenClaims {
  tenant_id: string;
  timeline_id: string;
  endpoint_id: string;
}

export interface LoggedRequest {
  method: string;
  path: string;
  authorization: string | null;
  contentType: string | null;
  bodyBytes: number;
  status: number;
  /** Date.now() when the request arrived and when the answer was sent. */
  at: number;
  doneAt: number;
}

export interface Forced {
  method?: string;
  /** Exact path, or omitted for any. */
  path?: string;
  /** Answer this status (with a short text body) instead of serving. */
  status?: number;
  /** Wait this long before answering (for cancellation and timeout tests). */
  delayMs?: number;
  /** How many matching requests it applies to (default: all). */
  times?: number;
  /**
   * Answer 200 with a body that never finishes: `Content-Length: 1048576`, the first bytes of a
   * zstd frame, then nothing (the connection stays open until the client gives up).
   */
  stallBody?: boolean;
}

/** The real service's default body limit for PUT. */
export const PUT_LIMIT = 100 * 1024 * 1024;

const ID = /^[0-9a-f]{32}$/;

export interface FakeEndpointStorage {
  port: number;
  /** host:port, as endpoint_storage_addr. */
  addr: string;
  objects: Map<string, Uint8Array>;
  log: LoggedRequest[];
  violations: string[];
  /** Accepts `token`; with claims, enforces the real service's claim rules. */
  addToken(token: string, claims?: TokenClaims): void;
  force(f: Forced): void;
  clearForced(): void;
  /** Requests matching method (and path), in arrival order. */
  requests(method?: string, path?: string): LoggedRequest[];
  /** Resolves at the next request matching `method` (and `path`), or rejects after timeoutMs. */
  nextRequest(method: string, timeoutMs: number, path?: string): Promise<LoggedRequest>;
  stop(): Promise<void>;
}

export function lfcPath(tenant: string, timeline: string, endpoint: string): string {
  return `/${tenant}/${timeline}/${endpoint}/lfc_state`;
}

export function startFakeEndpointStorage(
  opts: { port?: number; tokens?: Record<string, TokenClaims | null> } = {},
): FakeEndpointStorage {
  const objects = new Map<string, Uint8Array>();
  const tokens = new Map<string, TokenClaims | null>(Object.entries(opts.tokens ?? {}));
  const log: LoggedRequest[] = [];
  const violations: string[] = [];
  let forced: (Forced & { left: number })[] = [];
  const waiters = new Set<(r: LoggedRequest) => void>();

  const text = (status: number, body = "") =>
    new Response(body, { status, headers: body ? { "content-type": "text/plain" } : {} });

  function violation(what: string): Response {
    violations.push(what);
    return text(400, what);
  }

  async function serve(req: Request, entry: LoggedRequest): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    const method = req.method;
    if (method === "GET" && path === "/status") return text(200);

    const match = forced.find(
      (f) => f.left > 0 && (!f.method || f.method === method) && (!f.path || f.path === path),
    );
    if (match) {
      match.left--;
      if (match.delayMs) await Bun.sleep(match.delayMs);
      if (match.stallBody) {
        await req.arrayBuffer().catch(() => {});
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd));
          },
        });
        return new Response(body, {
          headers: { "content-type": "application/octet-stream", "content-length": "1048576" },
        });
      }
      if (match.status !== undefined) {
        await req.arrayBuffer().catch(() => {});
        return text(match.status, `forced ${match.status}`);
      }
    }

    const parts = path.split("/").slice(1);
    if (parts.length !== 4 || parts[3] !== "lfc_state") {
      return violation(
        `${method} ${path}: compute_ctl only uses /{tenant}/{timeline}/{endpoint}/lfc_state`,
      );
    }
    const [tenant, timeline, endpoint] = parts as [string, string, string];
    if (!["GET", "PUT", "DELETE"].includes(method)) {
      return violation(`${method} ${path}: method not served`);
    }
    if (url.search !== "") return violation(`${method} ${path}${url.search}: unexpected query`);
    if (!ID.test(tenant) || !ID.test(timeline)) {
      return violation(`${method} ${path}: malformed tenant or timeline id`);
    }
    if (endpoint === "") return violation(`${method} ${path}: empty endpoint id`);

    const auth = req.headers.get("authorization");
    const token = auth?.startsWith("Bearer ") ? auth.slice(7) : null;
    if (token === null || !tokens.has(token)) {
      return violation(`${method} ${path}: missing or unknown bearer token`);
    }
    const claims = tokens.get(token);
    if (claims) {
      const ok =
        claims.tenant_id === tenant &&
        claims.timeline_id === timeline &&
        (method === "GET" || claims.endpoint_id === endpoint);
      if (!ok) return text(401);
    }

    switch (method) {
      case "GET": {
        const obj = objects.get(path);
        if (!obj) return text(404, path);
        return new Response(obj, { headers: { "content-type": "application/octet-stream" } });
      }
      case "PUT": {
        // The reference sends no content-type; a client that does is not compute_ctl.
        if (entry.contentType !== null) {
          await req.arrayBuffer().catch(() => {});
          return violation(`PUT ${path}: unexpected content-type ${entry.contentType}`);
        }
        const body = new Uint8Array(await req.arrayBuffer());
        entry.bodyBytes = body.byteLength;
        if (body.byteLength > PUT_LIMIT) return text(400, "body too large");
        objects.set(path, body);
        return text(200);
      }
      default:
        objects.delete(path);
        return text(200);
    }
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: opts.port ?? 0,
    maxRequestBodySize: PUT_LIMIT * 2,
    idleTimeout: 0,
    fetch: async (req) => {
      const entry: LoggedRequest = {
        method: req.method,
        path: new URL(req.url).pathname,
        authorization: req.headers.get("authorization"),
        contentType: req.headers.get("content-type"),
        bodyBytes: 0,
        status: 0,
        at: Date.now(),
        doneAt: 0,
      };
      log.push(entry);
      const res = await serve(req, entry);
      entry.status = res.status;
      entry.doneAt = Date.now();
      for (const w of [...waiters]) w(entry);
      return res;
    },
  });
  const port = server.port ?? 0;

  return {
    port,
    addr: `127.0.0.1:${port}`,
    objects,
    log,
    violations,
    addToken: (token, claims) => {
      tokens.set(token, claims ?? null);
    },
    force: (f) => {
      forced.push({ ...f, left: f.times ?? Number.POSITIVE_INFINITY });
    },
    clearForced: () => {
      forced = [];
    },
    requests: (method, path) =>
      log.filter((r) => (!method || r.method === method) && (!path || r.path === path)),
    nextRequest: (method, timeoutMs, path) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(
            new Error(`no ${method} ${path ?? ""} reached endpoint storage in ${timeoutMs} ms`),
          );
        }, timeoutMs);
        const w = (r: LoggedRequest) => {
          if (r.method !== method || (path && r.path !== path)) return;
          clearTimeout(timer);
          waiters.delete(w);
          resolve(r);
        };
        waiters.add(w);
      }),
    stop: async () => {
      await server.stop(true);
    },
  };
}

if (import.meta.main) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i === -1 ? undefined : process.argv[i + 1];
  };
  const fake = startFakeEndpointStorage({
    port: Number(arg("--port") ?? 0),
    tokens: { [arg("--token") ?? process.env.ENDPOINT_STORAGE_TOKEN ?? "token"]: null },
  });
  console.log(JSON.stringify({ port: fake.port }));
  const bye = () => void fake.stop().then(() => process.exit(0));
  process.on("SIGTERM", bye);
  process.on("SIGINT", bye);
}
