// The hot routes (GET routes with a plain handler served without Elysia's router) answer exactly
// as Elysia answers the same routes: status, body, headers and access log lines, for every kind
// of request the control plane or a hostile client sends them.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type AnyElysia, Elysia, t } from "elysia";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import type { ComputeStatus } from "../../../src/api/status.ts";
import type { ComputeState } from "../../../src/compute/state.ts";
import {
  authGuard,
  createHttpApp,
  HttpError,
  hotPaths,
  plain,
  requestHandler,
  requestInfo,
} from "../../../src/http/app.ts";
import { createAuthorizer } from "../../../src/http/auth.ts";
import { statusHandler, statusRoutes } from "../../../src/http/routes/status.ts";
import { externalApp, internalApp, type ServerContext } from "../../../src/http/servers.ts";
import { configureLogging, log } from "../../../src/log.ts";

const COMPUTE_ID = "compute-1";
const json = (v: unknown) => ({
  status: 200,
  body: JSON.stringify(v),
  contentType: "application/json",
});
let lines: string[] = [];
let token: string;
let otherComputeToken: string;
let app: AnyElysia;

// A stand-in for ComputeState: only the fields /status reads.
const state = {
  status: "empty" as ComputeStatus,
  startTimeMicros: 1_753_963_200_123_456,
  lastActiveMicros: null as number | null,
  error: null as string | null,
  tenant: null as string | null,
  timeline: null as string | null,
};

let boom: "none" | "http" | "error" = "none";

beforeAll(async () => {
  configureLogging({ sink: { write: (l) => lines.push(l) }, format: "text", level: "info" });
  const keys = await generateKeyPair("EdDSA", { extractable: true });
  const jwk = { ...(await exportJWK(keys.publicKey)), alg: "EdDSA", kid: "k" };
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: "EdDSA" }).sign(keys.privateKey);
  token = await sign({ compute_id: COMPUTE_ID });
  otherComputeToken = await sign({ compute_id: "other" });
  const authorize = await createAuthorizer({
    jwks: { keys: [jwk] },
    computeId: COMPUTE_ID,
    bypass: false,
  });
  app = createHttpApp({ name: "external", logger: log })
    .use(
      new Elysia().get(
        "/open",
        plain(() => json({ open: true })),
      ),
    )
    .use(
      new Elysia()
        .use(authGuard(authorize))
        .use(statusRoutes(state as unknown as ComputeState))
        .get(
          "/flaky",
          plain(({ request }) => {
            if (boom === "http") throw new HttpError(412, "invalid compute status: Empty");
            if (boom === "error") throw new Error("Something Broke");
            return json({ id: requestInfo(request)?.id ?? null });
          }),
        ),
    );
});

afterAll(() => {
  configureLogging({ sink: { write: (l) => process.stderr.write(l) } });
});

interface Seen {
  status: number;
  body: string;
  headers: [string, string][];
  log: string[];
}

/** One request, its answer and the log lines it wrote, with ids, times and latency masked. */
async function seen(
  serve: (r: Request) => Response | Promise<Response>,
  path: string,
  headers: Record<string, string>,
): Promise<Seen> {
  lines = [];
  const res = await serve(new Request(`http://localhost${path}`, { headers }));
  const body = await res.text();
  await Bun.sleep(5); // Elysia logs the answer after it is sent
  const given = headers["x-request-id"];
  const id = res.headers.get("x-request-id") ?? "";
  if (given !== undefined) expect(id).toBe(given);
  else expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const mask = (l: string) =>
    l
      .replace(/^\S+Z /, "<ts> ")
      .replaceAll(id, "<id>")
      .replace(/latency=\d+/, "latency=<n>");
  return {
    status: res.status,
    body: body.replaceAll(id, "<id>"),
    headers: [...res.headers].map(([k, v]) => [k, k === "x-request-id" ? "<id>" : v]),
    log: lines.map(mask),
  };
}

const elysia = (r: Request) => app.handle(r);
const hot = (r: Request) => requestHandler(app)(r);

describe("which routes are hot", () => {
  test("plain GET routes with a static path, guarded or not", () => {
    expect(hotPaths(app).sort()).toEqual(["/flaky", "/open", "/status"]);
  });

  test("the external server's /status is hot, behind its JWT guard", async () => {
    const ctx = {
      params: {
        connstr: new URL("postgres://cloud_admin@localhost/postgres"),
        computeId: COMPUTE_ID,
        pgdata: "/nonexistent",
      },
      state,
      jwks: null,
      instanceIdBypass: false,
    } as unknown as ServerContext;
    const external = await externalApp(ctx);
    expect(hotPaths(external)).toContain("/status");
    // Without a JWKS every token is refused.
    const res = await requestHandler(external)(
      new Request("http://localhost/status", { headers: { authorization: `Bearer ${token}` } }),
    );
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: "failed to verify authorization token" });
    expect(hotPaths(internalApp(ctx))).toEqual([]);
  });

  test("a route with a schema, a hook of its own or a non-plain handler is not", () => {
    const a = createHttpApp({ name: "internal", logger: log })
      .get(
        "/plain",
        plain(() => json("x")),
      )
      .get("/not-plain", () => new Response("x"))
      .get(
        "/schema",
        plain(() => json("x")),
        { query: t.Object({ q: t.String() }) },
      )
      .get(
        "/:param",
        plain(() => json("x")),
      )
      .use(
        // Shaped like authGuard's group, with a hook that is not a guard.
        new Elysia().use(new Elysia().onBeforeHandle({ as: "scoped" }, () => {})).get(
          "/hooked",
          plain(() => json("x")),
        ),
      )
      .post(
        "/post",
        plain(() => json("x")),
      );
    expect(hotPaths(a)).toEqual(["/plain"]);
  });

  test("a global hook other than createHttpApp's turns the hot path off", () => {
    const a = createHttpApp({ name: "internal", logger: log })
      .get(
        "/plain",
        plain(() => json("x")),
      )
      .onRequest(() => {});
    expect(hotPaths(a)).toEqual([]);
  });
});

describe("a hot route answers and logs as Elysia does", () => {
  const cases: [string, string, () => Record<string, string>][] = [
    ["a valid token", "/status", () => ({ authorization: `Bearer ${token}` })],
    ["no token", "/status", () => ({})],
    ["not a bearer token", "/status", () => ({ authorization: `Basic ${token}` })],
    ["a bad signature", "/status", () => ({ authorization: `Bearer ${token}x` })],
    [
      "another compute's token",
      "/status",
      () => ({ authorization: `Bearer ${otherComputeToken}` }),
    ],
    ["a query string", "/status?verbose=1&x=%20", () => ({ authorization: `Bearer ${token}` })],
    [
      "a request id",
      "/status",
      () => ({ authorization: `Bearer ${token}`, "x-request-id": "rid with space" }),
    ],
    ["a request id with a tab", "/status", () => ({ "x-request-id": "a\tb" })],
    ["an unguarded route", "/open", () => ({})],
    ["the request id seen by the handler", "/flaky", () => ({ authorization: `Bearer ${token}` })],
  ];
  for (const [what, path, headers] of cases) {
    test(what, async () => {
      const viaElysia = await seen(elysia, path, headers());
      const viaHot = await seen(hot, path, headers());
      expect(viaHot).toEqual(viaElysia);
      expect(viaHot.log.length).toBeGreaterThanOrEqual(2);
    });
  }

  test("a handler's HttpError and unexpected throw", async () => {
    const auth = { authorization: `Bearer ${token}` };
    for (const kind of ["http", "error"] as const) {
      boom = kind;
      try {
        const viaElysia = await seen(elysia, "/flaky", auth);
        const viaHot = await seen(hot, "/flaky", auth);
        expect(viaHot).toEqual(viaElysia);
        expect(viaHot.status).toBe(kind === "http" ? 412 : 500);
        expect(viaHot.log.some((l) => l.includes(" ERROR "))).toBe(true);
      } finally {
        boom = "none";
      }
    }
  });

  test("the two access log lines, in order, one line each", async () => {
    const s = await seen(hot, "/status", {
      authorization: `Bearer ${token}`,
      "x-request-id": "r1",
    });
    expect(s.log).toEqual([
      "<ts>  INFO request{method=GET uri=/status version=HTTP/1.1}: GET /status request_id=<id>\n",
      "<ts>  INFO request{method=GET uri=/status version=HTTP/1.1}: response request_id=<id> code=200 latency=<n>\n",
    ]);
  });
});

describe("GET /status's body", () => {
  test("follows every change of the state", async () => {
    const handler = statusHandler(state as unknown as ComputeState);
    const body = async () =>
      JSON.parse(await handler({ request: new Request("http://x/") }).text());
    expect(await body()).toEqual({
      start_time: "2025-07-31T12:00:00.123456Z",
      tenant: null,
      timeline: null,
      status: "empty",
      last_active: null,
      error: null,
    });
    try {
      state.status = "failed";
      state.error = "it broke";
      expect(await body()).toMatchObject({ status: "failed", error: "it broke" });
      state.lastActiveMicros = 1_753_963_201_000_000;
      expect((await body()).last_active).toBe("2025-07-31T12:00:01+00:00");
      state.tenant = "t1";
      state.timeline = "tl1";
      expect(await body()).toMatchObject({ tenant: "t1", timeline: "tl1" });
      state.startTimeMicros = 1_753_963_300_000_000;
      expect((await body()).start_time).toBe("2025-07-31T12:01:40Z");
    } finally {
      Object.assign(state, {
        status: "empty",
        error: null,
        lastActiveMicros: null,
        tenant: null,
        timeline: null,
        startTimeMicros: 1_753_963_200_123_456,
      });
    }
  });
});
