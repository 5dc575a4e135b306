// page_service_pb.ts is generated from page_service.proto (`bun run gen:proto`) and committed;
// this fails when one was changed without the other.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../../..");
const GENERATED = "src/storage/page-api/page_service_pb.ts";

test("the committed page_service_pb.ts is what the .proto generates", () => {
  const out = mkdtempSync(join(tmpdir(), "compute_ctl-gen-proto-"));
  try {
    const r = Bun.spawnSync([join(ROOT, "node_modules/.bin/buf"), "generate", "--output", out], {
      cwd: ROOT,
      stderr: "pipe",
    });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    expect(readFileSync(join(out, GENERATED), "utf8")).toBe(
      readFileSync(join(ROOT, GENERATED), "utf8"),
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 60_000);
