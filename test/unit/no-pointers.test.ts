import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";

// Comments, test names and test data state facts; they do not point at documents that are not in
// this repository (a design note's section, an issue number, a sibling checkout).
const ROOT = resolve(import.meta.dir, "../..");
const DIRS = ["src", "test", "bench", "scripts"];
const POINTER = new RegExp(
  [String.raw`\b[a-z_-]+\.md ?§`, String.raw`\.\./shared\b`, String.raw`\bissue \d+\b`].join("|"),
);

test("no file under src/, test/, bench/ or scripts/ points outside the repository", () => {
  const found: string[] = [];
  for (const dir of DIRS) {
    for (const f of readdirSync(join(ROOT, dir), { recursive: true, encoding: "utf8" })) {
      const path = join(ROOT, dir, f);
      const rel = relative(ROOT, path);
      if (rel.startsWith("test/fixtures/") || path === import.meta.path) continue;
      if (!/\.(ts|json|sh|sql|md)$/.test(f)) continue;
      const lines = readFileSync(path, "utf8").split("\n");
      lines.forEach((line, i) => {
        if (POINTER.test(line)) found.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  expect(found).toEqual([]);
});
