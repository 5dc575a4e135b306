import { expect, test } from "bun:test";
import { renderMigrations } from "../../../src/spec/migrations.ts";

test("lakebase renames every neon_superuser of the rendered migrations to databricks_superuser", () => {
  const neon = renderMigrations("neon_superuser");
  const lakebase = renderMigrations("neon_superuser", true);
  expect(lakebase).toHaveLength(neon.length);
  expect(neon.some((m) => m.includes("neon_superuser"))).toBe(true);
  expect(lakebase.some((m) => m.includes("neon_superuser"))).toBe(false);
  expect(lakebase).toEqual(neon.map((m) => m.replaceAll("neon_superuser", "databricks_superuser")));
  // Another privileged role name is kept; only the literal neon_superuser is renamed.
  const other = renderMigrations("my_superuser", true);
  expect(other[0]).toContain("my_superuser");
  expect(other.join("\n")).not.toContain("neon_superuser");
});
