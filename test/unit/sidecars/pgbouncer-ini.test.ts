import { describe, expect, test } from "bun:test";
import { iniSettingProblem } from "../../../src/api/sidecar-values.ts";
import { rewritePgbouncerIni } from "../../../src/sidecars/pgbouncer.ts";

const INI = [
  "; comment",
  "[databases]",
  "*=host=localhost port=5432",
  "",
  "[pgbouncer]",
  "listen_port = 6432",
  "; pool size",
  "Default_Pool_Size = 64",
  "default_pool_size=65",
  "",
  "[users]",
  "x = pool_mode=session",
  "",
].join("\n");

describe("rewritePgbouncerIni", () => {
  test("replaces a key in place (case-insensitively, dropping duplicates) and appends new ones", () => {
    const out = rewritePgbouncerIni(INI, [
      ["default_pool_size", "17"],
      ["max_client_conn", "100"],
    ]);
    expect(out).toBe(
      [
        "; comment",
        "[databases]",
        "*=host=localhost port=5432",
        "",
        "[pgbouncer]",
        "listen_port = 6432",
        "; pool size",
        "default_pool_size=17",
        "max_client_conn=100",
        "",
        "[users]",
        "x = pool_mode=session",
        "",
      ].join("\n"),
    );
  });

  test("a key of another section is not touched; the last section gets its keys at its end", () => {
    const ini = "[users]\npool_mode = session\n[pgbouncer]\nlisten_port=1\n";
    expect(rewritePgbouncerIni(ini, [["pool_mode", "transaction"]])).toBe(
      "[users]\npool_mode = session\n[pgbouncer]\nlisten_port=1\npool_mode=transaction\n",
    );
  });

  test("no [pgbouncer] section is an error, not a rewrite", () => {
    expect(() => rewritePgbouncerIni("[databases]\n", [["a", "b"]])).toThrow(
      "the pgbouncer ini file has no [pgbouncer] section",
    );
  });

  test("no value may add a line, no key may be two keys", () => {
    expect(iniSettingProblem("default_pool_size", "17")).toBeNull();
    expect(iniSettingProblem("default_pool_size", "17\nadmin_users=evil")).toContain(
      "control character",
    );
    expect(iniSettingProblem("a=b", "1")).toContain("invalid pgbouncer setting name");
    expect(iniSettingProblem("[x]", "1")).toContain("invalid pgbouncer setting name");
    expect(iniSettingProblem("", "1")).toContain("invalid pgbouncer setting name");
    expect(() => rewritePgbouncerIni(INI, [["k", "v\r\n[databases]"]])).toThrow();
  });
});
