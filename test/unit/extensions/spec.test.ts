// The spec side of remote extensions: get_ext's resolution, archive paths, the preload list.
import { describe, expect, test } from "bun:test";
import type { RemoteExtSpec } from "../../../src/api/spec.ts";
import {
  archivePath,
  goArch,
  preloadLibraries,
  resolveExtension,
} from "../../../src/extensions/spec.ts";

const rspec: RemoteExtSpec = {
  public_extensions: ["pub"],
  custom_extensions: null,
  library_index: { libpub: "pub", pg_stat: "pub", ext: "ext" },
  extension_data: { pub: { control_data: {}, archive_path: "x" } },
};

describe("resolveExtension", () => {
  test("strips everything from the first .so and maps the library", () => {
    expect(resolveExtension(rspec, "libpub.so.1.2", true)).toBe("pub");
    expect(resolveExtension(rspec, "libpub", true)).toBe("pub");
    expect(resolveExtension(rspec, "pub", false)).toBe("pub");
  });
  test("the reference's not-found texts", () => {
    expect(() => resolveExtension(rspec, "nope.so", true)).toThrow("library nope is not found");
    expect(() => resolveExtension(rspec, "ext", true)).toThrow("extension ext is not found");
    expect(() => resolveExtension({ ...rspec, public_extensions: null }, "pub", false)).toThrow(
      "extension pub is not found",
    );
    expect(() => resolveExtension({ ...rspec, custom_extensions: ["zzz"] }, "zzz", false)).toThrow(
      "real_ext_name zzz is not found",
    );
    // Inherited object keys are not library names.
    expect(() => resolveExtension(rspec, "constructor", true)).toThrow("library constructor");
  });
});

test("archivePath and goArch", () => {
  expect(archivePath("latest", "amd64", 15, "anon")).toBe(
    "latest/amd64/v15/extensions/anon.tar.zst",
  );
  expect(goArch("x64")).toBe("amd64");
  expect(goArch("arm64")).toBe("arm64");
  expect(goArch("riscv64")).toBe("riscv64");
});

describe("preloadLibraries", () => {
  test("setting then the last postgresql.conf line, without neon/databricks_auth, indexed only", () => {
    const conf = [
      "shared_preload_libraries='ignored_first'",
      "max_connections=10",
      "shared_preload_libraries='neon,pg_stat, libpub'",
    ].join("\n");
    expect(preloadLibraries(rspec, "neon, databricks_auth,libpub,unknown", conf)).toEqual([
      "libpub",
      "pg_stat",
      "libpub",
    ]);
  });
  test("a conf line without =' gives nothing; no setting gives nothing", () => {
    expect(preloadLibraries(rspec, null, "shared_preload_libraries = 'libpub'")).toEqual([]);
    expect(preloadLibraries(rspec, null, null)).toEqual([]);
  });
});
