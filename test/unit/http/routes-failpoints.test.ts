// POST /failpoints in-process: the testing switch, the fail-crate syntax errors and the body rules.
import { afterEach, describe, expect, test } from "bun:test";
import { evalFailpoint, initFailpoints, resetFailpoints } from "../../../src/failpoints.ts";
import { createHttpApp } from "../../../src/http/app.ts";
import { failpointsRoutes } from "../../../src/http/routes/failpoints.ts";
import { log } from "../../../src/log.ts";

const app = createHttpApp({ name: "internal", logger: log }).use(failpointsRoutes());

function post(body: unknown, contentType = "application/json") {
  return app.handle(
    new Request("http://localhost/failpoints", {
      method: "POST",
      headers: { "content-type": contentType },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );
}

async function expectError(r: Response, status: number, error: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toBe("application/json");
  expect(await r.json()).toEqual({ error });
}

afterEach(() => resetFailpoints());

describe("POST /failpoints", () => {
  test("412 with the reference's text when failpoints are not enabled", async () => {
    initFailpoints({});
    await expectError(
      await post([{ name: "compute-promotion", actions: "return(0)" }]),
      412,
      "Cannot manage failpoints because neon was compiled without failpoints support",
    );
    expect(evalFailpoint("compute-promotion")).toBeNull();
  });

  test("200 with an empty body; the failpoints take effect in order", async () => {
    initFailpoints({ COMPUTE_CTL_TESTING: "1" });
    const r = await post([
      { name: "compute-promotion", actions: "return(0)" },
      { name: "compute-prewarm", actions: "1*return(x)->off" },
    ]);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBeNull();
    expect(await r.text()).toBe("");
    expect(evalFailpoint("compute-promotion")).toEqual({ arg: "0" });
    expect(evalFailpoint("compute-prewarm")).toEqual({ arg: "x" });
    expect(evalFailpoint("compute-prewarm")).toBeNull();
    const off = await post([{ name: "compute-promotion", actions: "off" }]);
    expect(off.status).toBe(200);
    expect(evalFailpoint("compute-promotion")).toBeNull();
    expect((await post([])).status).toBe(200);
  });

  test("400 for a bad action; the entries before it stay applied", async () => {
    initFailpoints({ COMPUTE_CTL_TESTING: "1" });
    await expectError(
      await post([
        { name: "first", actions: "return" },
        { name: "second", actions: "explode" },
      ]),
      400,
      'failed to configure failpoints: unrecognized command "explode"',
    );
    expect(evalFailpoint("first")).toEqual({ arg: null });
  });

  test("body errors come first: 422 for the python client's `action` key, 400, 415", async () => {
    initFailpoints({});
    await expectError(
      await post([{ name: "x", action: "return" }]),
      422,
      "failed to deserialize the json body into the target type: [0].actions: missing field",
    );
    await expectError(
      await post({ name: "x", actions: "return" }),
      422,
      "failed to deserialize the json body into the target type: $: expected an array, got an object",
    );
    const syntax = await post("[");
    expect(syntax.status).toBe(400);
    expect(((await syntax.json()) as { error: string }).error).toStartWith(
      "failed to parse the request body as json:",
    );
    await expectError(
      await post([], "text/plain"),
      415,
      "expected request with `content-type: application/json`",
    );
  });
});
