import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { documentOrder, registeredRoutes } from "../../../src/http/openapi.ts";
import { empty, operation } from "../../../src/http/route-doc.ts";

const doc = (operationId: string) =>
  operation({ operationId, summary: "s", responses: { 200: empty("ok") } });

describe("the route table is the registered routes", () => {
  test("a registered route without a description is refused", () => {
    const app = new Elysia().get("/a", () => 1, { detail: doc("a") }).get("/b", () => 2);
    expect(() => registeredRoutes(app, "internal")).toThrow(
      "internal GET /b is registered without a description",
    );
  });

  test("auth from the guard's hook, the path template from the path parameter", () => {
    const guarded = new Elysia()
      .use(new Elysia().onBeforeHandle({ as: "scoped" }, () => {}))
      .get("/g", () => 1, { detail: doc("g") });
    const app = new Elysia()
      .get("/open", () => 1, { detail: doc("open") })
      .use(guarded)
      .post("/files/*", () => 1, {
        detail: operation({
          operationId: "files",
          summary: "s",
          parameters: [{ name: "filename", in: "path", required: true }],
          responses: { 200: empty("ok") },
        }),
      });
    const routes = registeredRoutes(app, "external");
    expect(routes.map((r) => [r.method, r.path, r.route, r.auth])).toEqual([
      ["get", "/open", "/open", false],
      ["get", "/g", "/g", true],
      ["post", "/files/{filename}", "/files/*", false],
    ]);
  });

  test("document order: external, internal, then what both serve", () => {
    const ext = registeredRoutes(
      new Elysia()
        .get("/both", () => 1, { detail: doc("b1") })
        .get("/e", () => 1, { detail: doc("e") }),
      "external",
    );
    const int = registeredRoutes(
      new Elysia()
        .get("/both", () => 1, { detail: doc("b2") })
        .get("/i", () => 1, { detail: doc("i") }),
      "internal",
    );
    expect(documentOrder(ext, int).map((r) => r.operationId)).toEqual(["e", "i", "b1", "b2"]);
  });
});
