import { afterEach, expect, test } from "bun:test";
import {
  configureFailpoints,
  evalFailpoint,
  failpoint,
  failpointsEnabled,
  initFailpoints,
  resetFailpoints,
} from "../../src/failpoints.ts";

afterEach(resetFailpoints);

const testing = (FAILPOINTS?: string) => initFailpoints({ COMPUTE_CTL_TESTING: "1", FAILPOINTS });

test("FAILPOINTS is read only behind COMPUTE_CTL_TESTING=1", () => {
  initFailpoints({ FAILPOINTS: "compute-prewarm=return" });
  expect(failpointsEnabled()).toBe(false);
  expect(failpoint("compute-prewarm")).toBe(false);
  initFailpoints({ COMPUTE_CTL_TESTING: "yes", FAILPOINTS: "compute-prewarm=return" });
  expect(failpoint("compute-prewarm")).toBe(false);
  testing("compute-prewarm=return(0);compute-promotion=return");
  expect(failpointsEnabled()).toBe(true);
  expect(evalFailpoint("compute-prewarm")).toEqual({ arg: "0" });
  expect(evalFailpoint("compute-promotion")).toEqual({ arg: null });
  expect(failpoint("compute-migration")).toBe(false);
});

test("off, counts and chains", () => {
  testing("a=off;b=2*return(x)->off;c=1*off->return(y);d=0%return");
  expect(failpoint("a")).toBe(false);
  expect(evalFailpoint("b")).toEqual({ arg: "x" });
  expect(failpoint("b")).toBe(true);
  expect(failpoint("b")).toBe(false);
  // `1*off` is used up first, then the chain falls through to return.
  expect(failpoint("c")).toBe(false);
  expect(evalFailpoint("c")).toEqual({ arg: "y" });
  expect(failpoint("d")).toBe(false);
});

test("a trailing semicolon and an empty value are tolerated", () => {
  testing("a=return;");
  expect(failpoint("a")).toBe(true);
  testing("");
  expect(failpoint("a")).toBe(false);
});

test("malformed FAILPOINTS fails the start with the reference's texts", () => {
  expect(() => testing("compute-prewarm")).toThrow(
    "startup failpoints: missing action on the 1th failpoint; try `compute-prewarm=return`",
  );
  expect(() => testing("a=return;b=bogus")).toThrow(
    'startup failpoints: failed to apply failpoint b=bogus: unrecognized command "bogus"',
  );
  expect(() => testing("a=return(1")).toThrow("parentheses do not match");
  expect(() => testing("a=sleep")).toThrow("sleep require timeout");
  expect(() => testing("a=x*return")).toThrow("failed to parse count");
  expect(() => testing("a=y%return")).toThrow("failed to parse frequency");
  // Accepted but inert here.
  testing("a=sleep(10);b=pause;c=yield;d=delay(5);e=print(hi)");
  for (const n of ["a", "b", "c", "d", "e"]) expect(failpoint(n)).toBe(false);
});

test("panic throws where the failpoint is evaluated", () => {
  testing("p=panic(boom);q=panic");
  expect(() => failpoint("p")).toThrow("boom");
  expect(() => failpoint("q")).toThrow("failpoint q panic");
});

test("configureFailpoints for POST /failpoints", () => {
  expect(() => configureFailpoints([{ name: "x", actions: "return" }])).toThrow(
    "Cannot manage failpoints because neon was compiled without failpoints support",
  );
  testing();
  configureFailpoints([{ name: "compute-prewarm", actions: "return" }]);
  expect(failpoint("compute-prewarm")).toBe(true);
  configureFailpoints([{ name: "compute-prewarm", actions: "off" }]);
  expect(failpoint("compute-prewarm")).toBe(false);
  expect(() =>
    configureFailpoints([
      { name: "ok", actions: "return" },
      { name: "bad", actions: "nope" },
    ]),
  ).toThrow('failed to configure failpoints: unrecognized command "nope"');
  // Entries before the bad one stay applied, as in the reference.
  expect(failpoint("ok")).toBe(true);
});
