// Shared by the api tests: the reference fixtures in test/fixtures/ and small document builders.
import { SchemaError } from "../../../src/api/decode.ts";

/** test/fixtures/, computed once from this file's location. */
export const FIXTURES_DIR = new URL("../../fixtures/", import.meta.url);

export function fixturePath(name: string): string {
  return new URL(name, FIXTURES_DIR).pathname;
}

export function fixtureText(name: string): Promise<string> {
  return Bun.file(fixturePath(name)).text();
}

// biome-ignore lint/suspicious/noExplicitAny: test documents are free-form JSON to be patched.
export type Json = any;

export const TENANT = "b0554b632bd4d547a63b86c3630317e8";
export const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";

/** The minimal spec test_compute_termination.py sends, as raw JSON. */
export function minimalSpec(): Json {
  return {
    format_version: 1.0,
    cluster: { roles: [], databases: [], postgresql_conf: "shared_preload_libraries='neon'" },
    tenant_id: TENANT,
    timeline_id: TIMELINE,
    pageserver_connstring: "postgres://no_user@localhost:64000",
    safekeeper_connstrings: ["localhost:5454"],
    mode: "Primary",
    skip_pg_catalog_updates: true,
    reconfigure_concurrency: 1,
    suspend_timeout_seconds: -1,
  };
}

/** The error thrown by `fn`, which must be a SchemaError. */
export function schemaError(fn: () => unknown): SchemaError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SchemaError) return err;
    throw err;
  }
  throw new Error("expected a SchemaError, but nothing was thrown");
}

/** The message of the plain Error thrown by `fn`. */
export function errorMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof Error) return err.message;
    throw err;
  }
  throw new Error("expected an error, but nothing was thrown");
}
