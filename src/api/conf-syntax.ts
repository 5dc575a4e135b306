// What Postgres 15's configuration-file lexer (guc-file.l) accepts, for the values compute_ctl
// writes into postgresql.conf: checked when a spec is decoded and again when it is rendered.

// Bytes >= 0x80 count as letters, so any non-ASCII character does too.
const LETTER = "A-Za-z_\\u0080-\\u{10FFFF}";
const ID = `[${LETTER}][${LETTER}0-9]*`;

/** A setting name the conf parser reads as one name: ID or ID.ID. */
export const CONF_NAME_RE = new RegExp(`^${ID}(?:\\.${ID})?$`, "u");

/** A value the conf parser reads as ONE token: integer, real, unquoted string or quoted string. */
const CONF_VALUE_TOKEN_RE = new RegExp(
  [
    "^[-+]?(?:[0-9]+|0x[0-9a-fA-F]+)[a-zA-Z]*$",
    "^[-+]?[0-9]*\\.[0-9]*(?:[Ee][-+]?[0-9]+)?$",
    // An unquoted string, but not exactly ID.ID: the lexer reads that as a qualified name,
    // which is no value (`x.y` is a syntax error; `x.y.z` and `x.y-` are strings).
    `^(?!${ID}\\.${ID}$)[${LETTER}](?:[${LETTER}0-9]|[-._:/])*$`,
    "^'(?:[^'\\\\\\n]|\\\\[^\\n]|'')*'$",
  ].join("|"),
  "u",
);

/** Whether a non-string setting's value is exactly one token of the grammar, free of controls. */
export function isConfValueToken(value: string): boolean {
  return !/[\x00-\x1f\x7f]/.test(value) && CONF_VALUE_TOKEN_RE.test(value);
}

/** Why `value` cannot be written into postgresql.conf at all, or null (only NUL is impossible). */
export function confValueProblem(value: string): string | null {
  return value.includes("\0")
    ? "contains a NUL character, which a postgresql.conf value cannot hold"
    : null;
}
