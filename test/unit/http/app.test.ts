import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { type AnyElysia, Elysia, status, t } from "elysia";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import {
  authGuard,
  BODY_LIMIT,
  createHttpApp,
  HttpError,
  jsonBody,
  listen,
  RejectionError,
  requestInfo,
} from "../../../src/http/app.ts";
import { createAuthorizer } from "../../../src/http/auth.ts";
import { configureLogging, log } from "../../../src/log.ts";

const COMPUTE_ID = "compute-1";
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// Stand-ins for src/api/decode.ts's errors: jsonBody maps them by name only.
class JsonSyntaxError extends Error {
  override name = "JsonSyntaxError";
}
class SchemaError extends Error {
  override name = "SchemaError";
}

type Spec = { spec: { cluster_id: string } };
function decodeSpec(text: string): Spec {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new JsonSyntaxError(`EOF while parsing a value at line 1 column ${text.length}`, {
      cause: err,
    });
  }
  const spec = (v as { spec?: { cluster_id?: unknown } }).spec;
  if (typeof spec?.cluster_id !== "string") {
    throw new SchemaError("spec: missing field `cluster_id` at line 1 column 2");
  }
  return v as Spec;
}

// Route groups shaped like the lead's controllers.
const metricsRoutes = () => new Elysia().get("/metrics", () => "compute_ctl_up 1\n");
const statusRoutes = () =>
  new Elysia()
    .get("/status", () => ({ status: "empty" }))
    .post("/configure", async ({ request }) => {
      const body = await jsonBody(request, decodeSpec);
      return { cluster: body.spec.cluster_id };
    })
    .post("/lfc/prewarm", () => new Response(null, { status: 202 }))
    .get("/created", () => status(201, { a: 1 }))
    .get("/precondition", () => {
      throw new HttpError(412, "invalid compute status: Running");
    })
    .get("/query", () => {
      throw new RejectionError(400, "Failed to deserialize query string: missing field `database`");
    })
    .get("/boom", () => {
      throw new Error("Something Broke", { cause: new Error("deeper") });
    })
    .get("/request-id", ({ request }) => ({ id: requestInfo(request)?.id }))
    .get("/schema", ({ query }) => query, { query: t.Object({ database: t.String() }) });
const internalRoutes = () =>
  new Elysia().post("/extension_server/*", ({ params }) => ({ file: params["*"] }));

let lines: string[] = [];
let token: string;
let app: AnyElysia;

beforeAll(async () => {
  configureLogging({ sink: { write: (t) => lines.push(t) }, format: "text", level: "info" });
  const keys = await generateKeyPair("EdDSA", { extractable: true });
  const jwk = { ...(await exportJWK(keys.publicKey)), alg: "EdDSA", kid: "k" };
  token = await new SignJWT({ compute_id: COMPUTE_ID })
    .setProtectedHeader({ alg: "EdDSA" })
    .sign(keys.privateKey);
  const authorize = await createAuthorizer({
    jwks: { keys: [jwk] },
    computeId: COMPUTE_ID,
    bypass: false,
  });
  app = createHttpApp({ name: "external", logger: log })
    .use(new Elysia().use(authGuard(authorize)).use(statusRoutes()))
    .use(metricsRoutes())
    .use(internalRoutes());
});

afterAll(() => {
  configureLogging({ sink: { write: (t) => process.stderr.write(t) } });
});

afterEach(() => {
  lines = [];
});

function req(
  method: string,
  path: string,
  init: {
    body?: string | ReadableStream<Uint8Array>;
    headers?: Record<string, string>;
    auth?: boolean;
  } = {},
) {
  const headers: Record<string, string> = { ...init.headers };
  if (init.auth !== false) headers.authorization ??= `Bearer ${token}`;
  return app.handle(
    new Request(`http://localhost${path}`, { method, body: init.body ?? null, headers }),
  );
}

const JSON_HEADERS = { "content-type": "application/json" };

async function expectError(res: Response, code: number, error: string) {
  expect(res.status).toBe(code);
  expect(res.headers.get("content-type")).toBe("application/json");
  expect(await res.json()).toEqual({ error });
}

describe("routing fallbacks", () => {
  test("unknown path is 404 with an empty body, without a token", async () => {
    const res = await req("GET", "/nope", { auth: false });
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("");
    expect(res.headers.get("content-type")).toBeNull();
  });

  test("known path with the wrong method is 405 with an empty body, without a token", async () => {
    for (const [m, p] of [
      ["POST", "/status"],
      ["DELETE", "/configure"],
      ["GET", "/configure"],
      ["POST", "/metrics"],
      ["GET", "/extension_server/neon.so"],
    ] as const) {
      const res = await req(m, p, { auth: false });
      expect(res.status, `${m} ${p}`).toBe(405);
      expect(await res.text()).toBe("");
    }
  });

  test("paths are strict and wildcards match their prefix only", async () => {
    expect((await req("GET", "/status/")).status).toBe(404);
    expect((await req("GET", "/extension_serverx")).status).toBe(404);
    const res = await req("POST", "/extension_server/lib/neon.so");
    expect(await res.json()).toEqual({ file: "lib/neon.so" });
  });

  test("HEAD on a GET route is served", async () => {
    expect((await req("HEAD", "/metrics")).status).toBe(200);
  });
});

describe("request id", () => {
  test("echoed when given", async () => {
    const res = await req("GET", "/status", { headers: { "X-Request-Id": "abc-123" } });
    expect(res.headers.get("x-request-id")).toBe("abc-123");
  });

  test("generated as a UUIDv4 when absent, and visible to the handler", async () => {
    const res = await req("GET", "/request-id");
    const id = res.headers.get("x-request-id");
    expect(id).toMatch(UUID_V4);
    expect(await res.json()).toEqual({ id });
  });

  test("set on every kind of response", async () => {
    const cases: [string, string, Parameters<typeof req>[2], number][] = [
      ["GET", "/status", {}, 200],
      ["GET", "/created", {}, 201],
      ["POST", "/lfc/prewarm", {}, 202],
      ["GET", "/nope", {}, 404],
      ["PUT", "/status", {}, 405],
      ["GET", "/status", { auth: false }, 400],
      ["GET", "/status", { headers: { authorization: "Bearer x.y.z" } }, 401],
      ["POST", "/configure", { body: "{}" }, 415],
      ["POST", "/configure", { body: "x".repeat(BODY_LIMIT + 1), headers: JSON_HEADERS }, 413],
      ["POST", "/configure", { body: "{", headers: JSON_HEADERS }, 400],
      ["POST", "/configure", { body: "{}", headers: JSON_HEADERS }, 422],
      ["GET", "/precondition", {}, 412],
      ["GET", "/boom", {}, 500],
    ];
    for (const [m, p, init, code] of cases) {
      const given = await req(m, p, {
        ...init,
        headers: { ...init?.headers, "x-request-id": "rid" },
      });
      expect(given.status, `${m} ${p}`).toBe(code);
      expect(given.headers.get("x-request-id"), `${m} ${p}`).toBe("rid");
      const generated = await req(m, p, init);
      expect(generated.status, `${m} ${p}`).toBe(code);
      expect(generated.headers.get("x-request-id"), `${m} ${p}`).toMatch(UUID_V4);
    }
  });
});

describe("JSON bodies", () => {
  test("a valid body reaches the handler", async () => {
    const res = await req("POST", "/configure", {
      body: JSON.stringify({ spec: { cluster_id: "c1" } }),
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ cluster: "c1" });
  });

  test("application/*+json is accepted", async () => {
    const res = await req("POST", "/configure", {
      body: JSON.stringify({ spec: { cluster_id: "c1" } }),
      headers: { "content-type": "application/vnd.neon+json" },
    });
    expect(res.status).toBe(200);
  });

  test("missing or wrong content type is 415", async () => {
    const error = "expected request with `content-type: application/json`";
    await expectError(await req("POST", "/configure", { body: "{}" }), 415, error);
    await expectError(
      await req("POST", "/configure", { body: "{}", headers: { "content-type": "text/plain" } }),
      415,
      error,
    );
  });

  test("a body above 2 MiB is 413; exactly 2 MiB is read", async () => {
    const error = "failed to buffer the request body: length limit exceeded";
    await expectError(
      await req("POST", "/configure", { body: "x".repeat(BODY_LIMIT + 1), headers: JSON_HEADERS }),
      413,
      error,
    );
    // Without Content-Length the limit is enforced while streaming.
    const chunk = new Uint8Array(64 * 1024).fill(32);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent > BODY_LIMIT) c.close();
        else {
          sent += chunk.byteLength;
          c.enqueue(chunk);
        }
      },
    });
    await expectError(
      await req("POST", "/configure", { body: stream, headers: JSON_HEADERS }),
      413,
      error,
    );
    // Padding with whitespace keeps the document valid at exactly the limit.
    const doc = JSON.stringify({ spec: { cluster_id: "c1" } });
    const atLimit = doc + " ".repeat(BODY_LIMIT - doc.length);
    const res = await req("POST", "/configure", { body: atLimit, headers: JSON_HEADERS });
    expect(res.status).toBe(200);
  });

  test("a syntax error is 400, lower-cased", async () => {
    await expectError(
      await req("POST", "/configure", { body: "{", headers: JSON_HEADERS }),
      400,
      "failed to parse the request body as json: eof while parsing a value at line 1 column 1",
    );
  });

  test("a document of the wrong shape is 422 naming the path, lower-cased", async () => {
    await expectError(
      await req("POST", "/configure", { body: '{"spec":{}}', headers: JSON_HEADERS }),
      422,
      "failed to deserialize the json body into the target type: spec: missing field `cluster_id` at line 1 column 2",
    );
  });
});

describe("errors", () => {
  test("HttpError keeps its text and status and is logged at ERROR", async () => {
    await expectError(await req("GET", "/precondition"), 412, "invalid compute status: Running");
    expect(lines.some((l) => / ERROR request\{.*\}: invalid compute status: Running/.test(l))).toBe(
      true,
    );
  });

  test("RejectionError lower-cases and is not logged at ERROR", async () => {
    await expectError(
      await req("GET", "/query"),
      400,
      "failed to deserialize query string: missing field `database`",
    );
    expect(lines.some((l) => l.includes(" ERROR "))).toBe(false);
  });

  test("an unexpected throw is 500 with its message, logged at ERROR", async () => {
    await expectError(await req("GET", "/boom"), 500, "Something Broke");
    expect(lines.some((l) => l.includes(" ERROR ") && l.includes("Something Broke: deeper"))).toBe(
      true,
    );
  });
});

describe("Elysia's own validation", () => {
  test("a query schema failure is 400 in the {error} shape, not Elysia's", async () => {
    const res = await req("GET", "/schema");
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(["error"]);
    expect(body.error).toStartWith("failed to deserialize query string: /database: ");
    expect((await req("GET", "/schema?database=x")).status).toBe(200);
  });
});

describe("access log", () => {
  test("request and response lines in the reference's span shape", async () => {
    const res = await req("POST", "/configure", {
      body: JSON.stringify({ spec: { cluster_id: "c1" } }),
      headers: { ...JSON_HEADERS, "x-request-id": "rid-1" },
    });
    expect(res.status).toBe(200);
    await Bun.sleep(10);
    const prefix = "INFO request{method=POST uri=/configure version=HTTP/1.1}: ";
    expect(lines.some((l) => l.includes(`${prefix}POST /configure request_id=rid-1`))).toBe(true);
    expect(
      lines.some((l) =>
        new RegExp(`${escapeRe(prefix)}response request_id=rid-1 code=200 latency=\\d+\n$`).test(l),
      ),
    ).toBe(true);
  });

  test("fallbacks and errors log their real status codes", async () => {
    await req("GET", "/nope", { headers: { "x-request-id": "a" } });
    await req("POST", "/status", { headers: { "x-request-id": "b" } });
    await req("GET", "/status", { auth: false, headers: { "x-request-id": "c" } });
    await req("POST", "/lfc/prewarm", { headers: { "x-request-id": "d" } });
    await req("GET", "/created", { headers: { "x-request-id": "e" } });
    await req("GET", "/boom", { headers: { "x-request-id": "f" } });
    await Bun.sleep(10);
    const code = (id: string) =>
      lines
        .map((l) => new RegExp(`response request_id=${id} code=(\\d+)`).exec(l)?.[1])
        .find(Boolean);
    expect([code("a"), code("b"), code("c"), code("d"), code("e"), code("f")]).toEqual([
      "404",
      "405",
      "400",
      "202",
      "201",
      "500",
    ]);
    expect(lines.some((l) => l.includes("uri=/nope") && l.includes("GET /nope request_id=a"))).toBe(
      true,
    );
  });

  test("the query string is part of the uri", async () => {
    await req("GET", "/status?verbose=1", { headers: { "x-request-id": "q" } });
    expect(lines.some((l) => l.includes("GET /status?verbose=1 request_id=q"))).toBe(true);
  });
});

describe("auth guard", () => {
  test("guarded routes refuse a missing token with 400, unguarded ones answer", async () => {
    await expectError(
      await req("GET", "/status", { auth: false }),
      400,
      "invalid authorization token",
    );
    expect(
      lines.some((l) => l.includes(" ERROR ") && l.includes("invalid authorization token")),
    ).toBe(true);
    expect((await req("GET", "/status")).status).toBe(200);
    const metrics = await req("GET", "/metrics", { auth: false });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toBe("compute_ctl_up 1\n");
    // Routes of groups used after the guarded one stay open.
    expect((await req("POST", "/extension_server/x.so", { auth: false })).status).toBe(200);
  });

  test("auth runs before the body is read", async () => {
    await expectError(
      await req("POST", "/configure", { auth: false, body: "{" }),
      400,
      "invalid authorization token",
    );
  });

  test("a bad token is 401", async () => {
    await expectError(
      await req("GET", "/status", { headers: { authorization: "Bearer a.b.c" } }),
      401,
      "failed to verify authorization token",
    );
  });
});

describe("listen", () => {
  test("answers on IPv4 and IPv6 loopback", async () => {
    const server = await listen(app, 0);
    try {
      for (const host of ["127.0.0.1", "[::1]"]) {
        const res = await fetch(`http://${host}:${server.port}/metrics`);
        expect(res.status).toBe(200);
        expect(res.headers.get("x-request-id")).toMatch(UUID_V4);
      }
      const missing = await fetch(`http://127.0.0.1:${server.port}/nope`);
      expect(missing.status).toBe(404);
      expect(missing.headers.get("content-length")).toBe("0");
      // Over a real socket, the body limit holds too.
      const big = await fetch(`http://[::1]:${server.port}/configure`, {
        method: "POST",
        headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` },
        body: "x".repeat(BODY_LIMIT + 1),
      });
      expect(big.status).toBe(413);
    } finally {
      await server.stop();
    }
  });

  test("a port in use rejects naming the port", async () => {
    const first = await listen(app, 0);
    try {
      const other = createHttpApp({ name: "internal", logger: log });
      await expect(listen(other, first.port)).rejects.toThrow(
        `failed to bind the compute_ctl internal HTTP server to [::]:${first.port}`,
      );
    } finally {
      await first.stop();
    }
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
