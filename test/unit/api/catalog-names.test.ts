// Role and database names Postgres would refuse, cut, or see twice are refused by ParsedSpec
// (so /configure answers 400) before anything is applied. Found by the spec fuzzer: each of these
// planned a CREATE that fails in Postgres on the first apply or on the next one.
import { describe, expect, test } from "bun:test";
import { decode } from "../../../src/api/decode.ts";
import { parseSpec } from "../../../src/api/parsed-spec.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { errorMessage, type Json, minimalSpec } from "./helpers.ts";

function specWith(patch: Json) {
  const doc = minimalSpec();
  return decode(ComputeSpec, { ...doc, ...patch, cluster: { ...doc.cluster, ...patch.cluster } });
}

describe("catalog names in the spec", () => {
  const refused: [string, Json, string][] = [
    [
      "a role listed twice",
      { cluster: { roles: [{ name: "a" }, { name: "b" }, { name: "a" }] } },
      'spec.cluster.roles[2].name: role "a" is listed twice',
    ],
    [
      "a database listed twice",
      {
        cluster: {
          databases: [
            { name: "d", owner: "cloud_admin" },
            { name: "d", owner: "other" },
          ],
        },
      },
      'spec.cluster.databases[1].name: database "d" is listed twice',
    ],
    [
      "an empty role name",
      { cluster: { roles: [{ name: "" }] } },
      "spec.cluster.roles[0].name: empty name",
    ],
    [
      "a NUL in a database name",
      { cluster: { databases: [{ name: "a\0b", owner: "cloud_admin" }] } },
      "spec.cluster.databases[0].name: name contains a NUL character",
    ],
    [
      "a role name Postgres would cut to 63 bytes",
      { cluster: { roles: [{ name: "é".repeat(32) }] } },
      "spec.cluster.roles[0].name: name is 64 bytes long, Postgres keeps at most 63",
    ],
    [
      "a database owner too long",
      { cluster: { databases: [{ name: "d", owner: "o".repeat(64) }] } },
      "spec.cluster.databases[0].owner: name is 64 bytes long, Postgres keeps at most 63",
    ],
    [
      "an empty rename target",
      { delta_operations: [{ action: "rename_role", name: "a", new_name: "" }] },
      "spec.delta_operations[0].new_name: empty name",
    ],
    [
      "SQL in a role option's name (found by the live fuzzer: it reached CREATE ROLE)",
      {
        cluster: {
          roles: [
            {
              name: "a",
              options: [{ name: "LOGIN; DROP DATABASE x; --", value: null, vartype: "bool" }],
            },
          ],
        },
      },
      'spec.cluster.roles[0].options[0].name: invalid option name "LOGIN; DROP DATABASE x; --", expected keywords separated by spaces',
    ],
    [
      "a control character in a role option's name",
      {
        cluster: {
          roles: [{ name: "a", options: [{ name: "\x01$$ ", value: "1", vartype: "integer" }] }],
        },
      },
      'spec.cluster.roles[0].options[0].name: invalid option name "\\u0001$$ ", expected keywords separated by spaces',
    ],
    [
      "SQL in an unquoted database option value",
      {
        cluster: {
          databases: [
            {
              name: "d",
              owner: "cloud_admin",
              options: [{ name: "TEMPLATE", value: "template0; SELECT 1", vartype: "enum" }],
            },
          ],
        },
      },
      'spec.cluster.databases[0].options[0].value: invalid enum value "template0; SELECT 1", expected a number or a word (or vartype "string")',
    ],
    [
      "a word as an integer option (Postgres: syntax error, the apply failed half-way)",
      {
        cluster: {
          roles: [
            {
              name: "a",
              options: [{ name: "CONNECTION LIMIT", value: "off", vartype: "integer" }],
            },
          ],
        },
      },
      'spec.cluster.roles[0].options[0].value: invalid integer value "off"',
    ],
    [
      "a role option that needs a value sent with null (the reference writes it bare: a syntax error half-way through the apply)",
      {
        cluster: {
          roles: [
            { name: "a", options: [{ name: "LOGIN", value: null, vartype: "bool" }] },
            {
              name: "b",
              options: [
                { name: "SUPERUSER", value: null, vartype: "bool" },
                { name: "CONNECTION LIMIT", value: null, vartype: "integer" },
              ],
            },
          ],
        },
      },
      'spec.cluster.roles[1].options[1].value: role option "CONNECTION LIMIT" needs a value, got null',
    ],
    [
      "a role option that needs a value, in lower case, sent with null",
      {
        cluster: {
          roles: [
            { name: "a", options: [{ name: "valid until", value: null, vartype: "string" }] },
          ],
        },
      },
      'spec.cluster.roles[0].options[0].value: role option "valid until" needs a value, got null',
    ],
    [
      "a database option sent with null (every CREATE DATABASE option takes a value)",
      {
        cluster: {
          databases: [
            {
              name: "d",
              owner: "cloud_admin",
              options: [{ name: "TEMPLATE", value: null, vartype: "enum" }],
            },
          ],
        },
      },
      'spec.cluster.databases[0].options[0].value: database option "TEMPLATE" needs a value, got null',
    ],
    [
      "a database's CONNECTION LIMIT sent with null",
      {
        cluster: {
          databases: [
            {
              name: "d",
              owner: "cloud_admin",
              options: [{ name: "CONNECTION LIMIT", value: null, vartype: "integer" }],
            },
          ],
        },
      },
      'spec.cluster.databases[0].options[0].value: database option "CONNECTION LIMIT" needs a value, got null',
    ],
  ];
  for (const [what, patch, message] of refused) {
    test(`refused: ${what}`, () => {
      expect(errorMessage(() => parseSpec(specWith(patch)))).toBe(message);
    });
  }

  test("accepted: 63 bytes, control characters, quotes, same-named role and database, plain options", () => {
    const spec = specWith({
      cluster: {
        roles: [{ name: "r".repeat(63) }, { name: 'a\t"b\x01' }, { name: "same" }],
        databases: [
          {
            name: "same",
            owner: 'a\t"b\x01',
            options: [
              { name: "LC_COLLATE", value: "it's; odd", vartype: "string" },
              { name: "TEMPLATE", value: "template0", vartype: "enum" },
              { name: "CONNECTION LIMIT", value: "-1", vartype: "integer" },
            ],
          },
        ],
      },
      delta_operations: [{ action: "something_new", name: "" }],
    });
    expect(parseSpec(spec).spec.cluster.roles.length).toBe(3);
  });

  test("accepted: null values for role keywords that take none, and for names that carry their value", () => {
    const spec = specWith({
      cluster: {
        roles: [
          {
            name: "a",
            options: [
              { name: "SUPERUSER", value: null, vartype: "bool" },
              { name: "NOINHERIT", value: null, vartype: "bool" },
              { name: "IN ROLE pg_monitor", value: null, vartype: "string" },
            ],
          },
        ],
        databases: [
          {
            name: "d",
            owner: "a",
            options: [{ name: "IS_TEMPLATE false", value: null, vartype: "bool" }],
          },
        ],
      },
    });
    expect(parseSpec(spec).spec.cluster.roles[0]?.options?.length).toBe(3);
  });
});
