// A merge that left its conflict markers behind breaks CI's script or a source file in ways a
// type check does not always see (shell, JSON, Markdown): no tracked text file may hold them.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const MARKER = /^(<{7} |={7}$|>{7} )/m;

test("no file holds a merge conflict marker", () => {
  const files = [".ci/run", "README.md", "package.json", "build.ts", "bunfig.toml"];
  for (const dir of ["src", "test", "bench", "scripts", "docs"]) {
    for (const f of new Bun.Glob("**/*").scanSync({ cwd: join(ROOT, dir), dot: true })) {
      files.push(join(dir, f));
    }
  }
  const marked = files.filter((f) => MARKER.test(readFileSync(join(ROOT, f), "latin1")));
  expect(marked).toEqual([]);
});
