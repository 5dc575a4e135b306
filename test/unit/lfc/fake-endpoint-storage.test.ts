// The fake endpoint storage itself: the real service's answers, and loud refusals of anything
// compute_ctl never sends.
import { afterAll, beforeAll, expect, test } from "bun:test";
import {
  type FakeEndpointStorage,
  lfcPath,
  startFakeEndpointStorage,
} from "../../fakes/endpoint-storage.ts";
import { cleanup, collectStream, trackProcess, waitForLine } from "../../support/proc.ts";

const T = "1".repeat(32);
const L = "2".repeat(32);
let fake: FakeEndpointStorage;
const url = (path: string) => `http://${fake.addr}${path}`;
const auth = (token: string) => ({ authorization: `Bearer ${token}` });

beforeAll(() => {
  fake = startFakeEndpointStorage({
    tokens: { any: null, scoped: { tenant_id: T, timeline_id: L, endpoint_id: "ep-a" } },
  });
});
afterAll(async () => {
  await fake.stop();
  await cleanup();
});

test("404 with the path, PUT 200, GET the bytes back, DELETE 200 (also when missing)", async () => {
  const p = lfcPath(T, L, "ep-a");
  const miss = await fetch(url(p), { headers: auth("any") });
  expect([miss.status, await miss.text()]).toEqual([404, p]);
  const put = await fetch(url(p), {
    method: "PUT",
    body: new Uint8Array([1, 2, 3]),
    headers: auth("any"),
  });
  expect(put.status).toBe(200);
  const hit = await fetch(url(p), { headers: auth("any") });
  expect(hit.headers.get("content-type")).toBe("application/octet-stream");
  expect([...new Uint8Array(await hit.arrayBuffer())]).toEqual([1, 2, 3]);
  expect((await fetch(url(p), { method: "DELETE", headers: auth("any") })).status).toBe(200);
  expect((await fetch(url(p), { method: "DELETE", headers: auth("any") })).status).toBe(200);
  expect(fake.violations).toEqual([]);
  expect(fake.requests("PUT", p)[0]).toMatchObject({
    bodyBytes: 3,
    status: 200,
    authorization: "Bearer any",
  });
});

test("claims: GET may read any endpoint of the timeline; PUT only its own", async () => {
  const other = lfcPath(T, L, "ep-b");
  expect((await fetch(url(other), { headers: auth("scoped") })).status).toBe(404);
  const put = await fetch(url(other), { method: "PUT", body: "x", headers: auth("scoped") });
  expect(put.status).toBe(401);
  const wrongTenant = lfcPath("3".repeat(32), L, "ep-a");
  expect((await fetch(url(wrongTenant), { headers: auth("scoped") })).status).toBe(401);
});

test("anything compute_ctl never sends is a 400 and a recorded violation", async () => {
  fake.violations.length = 0;
  const p = lfcPath(T, L, "ep-a");
  const cases: [string, RequestInit][] = [
    [p, {}], // no token
    [p, { headers: auth("unknown") }],
    [`/${T}/${L}/ep-a/other_key`, { headers: auth("any") }],
    [lfcPath("XYZ", L, "ep-a"), { headers: auth("any") }],
    [p, { method: "POST", headers: auth("any") }],
    [`${p}?x=1`, { headers: auth("any") }],
    [p, { method: "PUT", body: "x", headers: { ...auth("any"), "content-type": "text/plain" } }],
  ];
  for (const [path, init] of cases) {
    expect((await fetch(url(path), init)).status).toBe(400);
  }
  expect(fake.violations.length).toBe(cases.length);
});

test("forced statuses and delays, limited by times", async () => {
  const p = lfcPath(T, L, "ep-a");
  fake.force({ method: "GET", path: p, status: 503, delayMs: 200, times: 1 });
  const t0 = performance.now();
  expect((await fetch(url(p), { headers: auth("any") })).status).toBe(503);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
  expect((await fetch(url(p), { headers: auth("any") })).status).toBe(404);
  fake.clearForced();
});

test("runs standalone and prints its port", async () => {
  // As the test's own user: the fake needs no privileges, and the checkout may be root-only.
  const proc = trackProcess(
    Bun.spawn(
      [process.execPath, `${import.meta.dir}/../../fakes/endpoint-storage.ts`, "--token", "s"],
      {
        stdout: "pipe",
        stderr: "inherit",
      },
    ),
  );
  const out = collectStream(proc.stdout);
  const [line] = await waitForLine(out, /^\{"port":\d+\}$/, 10_000);
  const { port } = JSON.parse(line);
  const r = await fetch(`http://127.0.0.1:${port}${lfcPath(T, L, "e")}`, { headers: auth("s") });
  expect(r.status).toBe(404);
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
});
