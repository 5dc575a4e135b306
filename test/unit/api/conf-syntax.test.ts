// Which non-string values are written bare: exactly the single tokens Postgres 15's conf lexer
// accepts as a value (checked by hand against pg_file_settings).
import { expect, test } from "bun:test";
import { isConfValueToken } from "../../../src/api/conf-syntax.ts";

test("single value tokens are written bare", () => {
  for (const v of ["64MB", "on", "-1", "1.5e3", ".", "5.", ".5", "x.y.z", "a:b/c", "x", "'q'"]) {
    expect([v, isConfValueToken(v)]).toEqual([v, true]);
  }
});

test("what the lexer reads as something else, or as two tokens, is not", () => {
  // x.xa is a qualified name to the lexer, 1e3 an integer followed by another, - no token.
  for (const v of ["x.xa", "a.b", "1e3", "-", "4096 # x", "a b", "'", ""]) {
    expect([v, isConfValueToken(v)]).toEqual([v, false]);
  }
});
