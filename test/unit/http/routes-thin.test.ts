import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

// A route file parses, checks the compute status, calls one function and maps its result: the
// SQL and the subprocesses live in the modules that own the operations.
const ROUTES = resolve(import.meta.dir, "../../../src/http/routes");
const FORBIDDEN: [string, RegExp][] = [
  ["SQL text", /["'`]\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|GRANT|REVOKE)\s/i],
  ["a Postgres client", /from\s+["'](postgres|[./]+postgres\/client\.ts)["']/],
  ["a subprocess", /Bun\.spawn|node:child_process/],
];

test("src/http/routes/ holds no SQL text and spawns nothing", () => {
  const found: string[] = [];
  for (const file of readdirSync(ROUTES).filter((f) => f.endsWith(".ts"))) {
    const text = readFileSync(join(ROUTES, file), "utf8");
    for (const [what, re] of FORBIDDEN) if (re.test(text)) found.push(`${file}: ${what}`);
  }
  expect(found).toEqual([]);
});
