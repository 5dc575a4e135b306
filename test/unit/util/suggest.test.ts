import { expect, test } from "bun:test";
import { closestName, editDistance } from "../../../src/util/suggest.ts";

test("edit distance counts a swap of neighbours as one edit", () => {
  expect(editDistance("config", "config")).toBe(0);
  expect(editDistance("conifg", "config")).toBe(1);
  expect(editDistance("pgdat", "pgdata")).toBe(1);
  expect(editDistance("", "abc")).toBe(3);
  expect(editDistance("kitten", "sitting")).toBe(3);
});

test("closestName suggests only likely typos", () => {
  const names = ["pgdata", "pgbin", "config", "connstr", "dev", "log-level", "log-format"];
  expect(closestName("pg-data", names)).toBe("pgdata");
  expect(closestName("PG_DATA", names)).toBe("pgdata");
  expect(closestName("confg", names)).toBe("config");
  expect(closestName("log-levle", names)).toBe("log-level");
  expect(closestName("dew", names)).toBe("dev");
  expect(closestName("bogus", names)).toBeUndefined();
  expect(closestName("log", names)).toBeUndefined();
  expect(closestName("x", [])).toBeUndefined();
});
