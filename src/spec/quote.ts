// Quoting for the statements compute_ctl builds. Names from the spec are never
// spliced into SQL unquoted: identifiers are double-quoted, literals escaped, and values that
// PL/pgSQL bodies need are dollar-quoted with a tag the value cannot contain.
import type { Database, GenericOption, GenericOptions, Role } from "../api/spec.ts";

/** Always `"…"` with every `"` doubled; no case folding, and deliberately not idempotent. */
export function pgQuote(ident: string): string {
  return `"${ident.replaceAll('"', '""')}"`;
}

/**
 * Dollar-quotes `s` with the shortest tag `x…x` that does not occur in it, and returns the tag for
 * an enclosing block (one `x` longer, so it cannot occur in `s` either).
 */
export function pgQuoteDollar(s: string): { quoted: string; outerTag: string } {
  // A tag of n x's occurs in s exactly when s has a run of n x's: one pass finds the longest run
  // (growing the tag and searching again was quadratic, seconds for a long name of x's).
  let longest = 0;
  let run = 0;
  for (const ch of s) {
    run = ch === "x" ? run + 1 : 0;
    if (run > longest) longest = run;
  }
  const tag = "x".repeat(longest + 1);
  return { quoted: `$${tag}$${s}$${tag}$`, outerTag: `${tag}x` };
}

/** A SQL string literal: `'` doubled, `\` doubled, and the `E` prefix when a backslash is present. */
export function escapeLiteral(s: string): string {
  const body = s.replaceAll("'", "''").replaceAll("\\", "\\\\");
  return body.includes("\\") ? `E'${body}'` : `'${body}'`;
}

/** One option as a statement argument: `NAME 'lit'` for strings, `NAME value`, or `NAME`. */
export function optionClause(o: GenericOption): string {
  if (o.value === null) return o.name;
  return o.vartype === "string" ? `${o.name} ${escapeLiteral(o.value)}` : `${o.name} ${o.value}`;
}

export function optionsClause(opts: GenericOptions): string {
  return opts ? opts.map(optionClause).join(" ") : "";
}

/**
 * The password as Postgres should store it: a SCRAM verifier verbatim, anything else as an md5
 * hash without its `md5` prefix (the control plane's legacy convention).
 */
export function storedPassword(encrypted: string | null): string | null {
  if (encrypted === null) return null;
  return encrypted.startsWith("SCRAM-SHA-256") ? encrypted : `md5${encrypted}`;
}

/** The tail of CREATE/ALTER ROLE: options, always LOGIN, then the password clause. */
export function roleOptions(role: Role): string {
  const pw = storedPassword(role.encrypted_password);
  // Valid hashes contain no quote; escaping anyway keeps a malformed one from ending the literal.
  const password = pw === null ? " PASSWORD NULL" : ` PASSWORD ${escapeLiteral(pw)}`;
  return `${optionsClause(role.options)} LOGIN${password}`;
}

/** The tail of CREATE DATABASE: options (TEMPLATE stays a bare word), then the owner. */
export function databaseOptions(db: Database): string {
  return `${optionsClause(db.options)} OWNER ${pgQuote(db.owner)}`;
}
