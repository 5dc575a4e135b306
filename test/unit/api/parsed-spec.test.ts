import { describe, expect, test } from "bun:test";
import { decode, parseJson } from "../../../src/api/decode.ts";
import {
  fromConnstring,
  type ParsedSpec,
  parseHexId,
  parseSpec,
  parseU32,
  validateParsedSpec,
} from "../../../src/api/parsed-spec.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { errorMessage, fixtureText, type Json, minimalSpec, TENANT, TIMELINE } from "./helpers.ts";

const parse = (doc: Json) => parseSpec(decode(ComputeSpec, doc));
const parseError = (doc: Json) => errorMessage(() => parse(doc));
const setting = (name: string, value: string | null) => ({ name, value, vartype: "string" });

/** A spec that carries nothing in its fields and everything in cluster.settings (old style). */
function settingsOnly(settings: ReturnType<typeof setting>[]): Json {
  const doc = minimalSpec();
  for (const k of ["tenant_id", "timeline_id", "pageserver_connstring", "safekeeper_connstrings"]) {
    delete doc[k];
  }
  doc.cluster.settings = settings;
  return doc;
}

describe("parseSpec with the reference fixtures", () => {
  test("compute_api_cluster_spec.json parses from its settings", async () => {
    const text = await fixtureText("compute_api_cluster_spec.json");
    const raw = JSON.parse(text);
    const gucs = new Map<string, string>(raw.cluster.settings.map((o: Json) => [o.name, o.value]));
    const p = parseSpec(parseJson(ComputeSpec, text));
    expect(p.tenantId).toBe(gucs.get("neon.tenant_id") ?? "");
    expect(p.timelineId).toBe(gucs.get("neon.timeline_id") ?? "");
    expect(p.safekeeperConnstrings).toEqual((gucs.get("neon.safekeepers") ?? "").split(","));
    expect(p.pageserverConnInfo).toEqual({
      shardCount: 0,
      stripeSize: null,
      shards: {
        "0000": {
          pageservers: [
            { id: null, libpqUrl: gucs.get("neon.pageserver_connstring") ?? "", grpcUrl: null },
          ],
        },
      },
      preferProtocol: "libpq",
    });
    expect(p.storageAuthToken).toBeNull();
    expect(p.endpointStorageAddr).toBeNull();
    expect(p.spec.cluster.roles.length).toBe(raw.cluster.roles.length);
  });

  test("compute_tools_cluster_spec.json fails on its duplicate safekeeper", async () => {
    const spec = parseJson(ComputeSpec, await fixtureText("compute_tools_cluster_spec.json"));
    expect(errorMessage(() => parseSpec(spec))).toStartWith(
      "duplicate entry in safekeeper_connstrings: ",
    );
  });
});

describe("pageserver connection info", () => {
  test("pageserver_connection_info wins over the connstring and the setting", () => {
    const doc = minimalSpec();
    doc.cluster.settings = [setting("neon.pageserver_connstring", "postgres://guc")];
    doc.pageserver_connection_info = {
      shard_count: 2,
      stripe_size: 32768,
      shards: {
        "0002": { pageservers: [{ id: 1, libpq_url: "postgres://a", grpc_url: "grpc://a" }] },
        "0102": { pageservers: [{ id: 2, libpq_url: null, grpc_url: "grpc://b" }] },
      },
      prefer_protocol: "grpc",
    };
    expect(parse(doc).pageserverConnInfo).toEqual({
      shardCount: 2,
      stripeSize: 32768,
      shards: {
        "0002": { pageservers: [{ id: 1, libpqUrl: "postgres://a", grpcUrl: "grpc://a" }] },
        "0102": { pageservers: [{ id: 2, libpqUrl: null, grpcUrl: "grpc://b" }] },
      },
      preferProtocol: "grpc",
    });
  });

  test("a single legacy connstring is unsharded", () => {
    const doc = minimalSpec();
    doc.cluster.settings = [setting("neon.pageserver_connstring", "postgres://guc")];
    doc.shard_stripe_size = 8;
    const info = parse(doc).pageserverConnInfo;
    expect(info.shardCount).toBe(0);
    expect(info.stripeSize).toBeNull();
    expect(Object.keys(info.shards)).toEqual(["0000"]);
    expect(info.shards["0000"]?.pageservers[0]?.libpqUrl).toBe(doc.pageserver_connstring);
  });

  test("several legacy connstrings are shards NNCC with the stripe size", () => {
    const urls = ["postgres://p0", "postgres://p1", "postgres://p2"];
    const info = parse({
      ...minimalSpec(),
      pageserver_connstring: urls.join(","),
      shard_stripe_size: 2048,
    }).pageserverConnInfo;
    expect(info.shardCount).toBe(urls.length);
    expect(info.stripeSize).toBe(2048);
    expect(info.preferProtocol).toBe("libpq");
    expect(Object.entries(info.shards).map(([k, v]) => [k, v.pageservers[0]?.libpqUrl])).toEqual(
      urls.map((u, i) => [`0${i}03`, u]),
    );
  });

  test("shard keys are two hex digits each", () => {
    const info = fromConnstring(
      Array.from({ length: 17 }, (_, i) => `postgres://p${i}`).join(","),
      1,
    );
    // Key order is not meaningful (a HashMap in the reference; JS moves "1011" first).
    const keys = Object.keys(info.shards).sort();
    expect(keys[0]).toBe("0011");
    expect(keys).toContain("0a11");
    expect(keys.at(-1)).toBe("1011");
    expect(info.shards["1011"]?.pageservers[0]?.libpqUrl).toBe("postgres://p16");
  });

  test("several shards without a stripe size is an error", () => {
    expect(
      parseError({ ...minimalSpec(), pageserver_connstring: "postgres://a,postgres://b" }),
    ).toBe("2 shards but no stripe_size");
  });

  test("more than 255 shards do not fit a ShardCount", () => {
    expect(errorMessage(() => fromConnstring(Array(256).fill("p").join(","), 1))).toBe(
      "out of range integral type conversion attempted",
    );
  });

  test("the legacy connstring is taken as libpq whatever its scheme, as in the reference", () => {
    const info = parse({
      ...minimalSpec(),
      pageserver_connstring: "grpc://ps:51051",
    }).pageserverConnInfo;
    expect(info.preferProtocol).toBe("libpq");
    expect(info.shards["0000"]?.pageservers[0]).toEqual({
      id: null,
      libpqUrl: "grpc://ps:51051",
      grpcUrl: null,
    });
  });

  test("the settings fallback reads neon.pageserver_connstring and neon.stripe_size", () => {
    const doc = settingsOnly([
      setting("neon.pageserver_connstring", "postgres://a,postgres://b"),
      setting("neon.stripe_size", "4096"),
      setting("neon.safekeepers", "sk1:5454"),
      setting("neon.tenant_id", TENANT),
      setting("neon.timeline_id", TIMELINE),
    ]);
    const info = parse(doc).pageserverConnInfo;
    expect(info.shardCount).toBe(2);
    expect(info.stripeSize).toBe(4096);
    expect(Object.keys(info.shards)).toEqual(["0002", "0102"]);
  });

  test("a bad neon.stripe_size gives u32::from_str's error", () => {
    const doc = settingsOnly([
      setting("neon.pageserver_connstring", "postgres://a,postgres://b"),
      setting("neon.stripe_size", "4k"),
    ]);
    expect(parseError(doc)).toBe("invalid digit found in string");
  });

  test("no pageserver information at all", () => {
    const doc = minimalSpec();
    delete doc.pageserver_connstring;
    expect(parseError(doc)).toBe("pageserver connection information should be provided");
    // A setting whose value is null counts as absent.
    doc.cluster.settings = [setting("neon.pageserver_connstring", null)];
    expect(parseError(doc)).toBe("pageserver connection information should be provided");
  });
});

describe("safekeepers", () => {
  test("the field is used when non-empty, for any mode", () => {
    const sks = ["sk1:5454", "sk2:5454"];
    expect(parse({ ...minimalSpec(), safekeeper_connstrings: sks }).safekeeperConnstrings).toEqual(
      sks,
    );
    expect(
      parse({ ...minimalSpec(), mode: "Replica", safekeeper_connstrings: sks })
        .safekeeperConnstrings,
    ).toEqual(sks);
  });

  test("a primary falls back to neon.safekeepers split on ','", () => {
    const doc = minimalSpec();
    doc.safekeeper_connstrings = [];
    doc.cluster.settings = [setting("neon.safekeepers", "a:1,b:2,c:3")];
    expect(parse(doc).safekeeperConnstrings).toEqual(["a:1", "b:2", "c:3"]);
  });

  test("a primary without any is an error", () => {
    const doc = minimalSpec();
    delete doc.safekeeper_connstrings;
    expect(parseError(doc)).toBe("safekeeper connstrings should be provided");
  });

  test("replicas and static computes do not read the setting", () => {
    for (const mode of ["Replica", { Static: "0/169AD58" }]) {
      const doc = minimalSpec();
      doc.mode = mode;
      doc.safekeeper_connstrings = [];
      doc.cluster.settings = [setting("neon.safekeepers", "a:1,a:1")];
      expect(parse(doc).safekeeperConnstrings).toEqual([]);
    }
  });

  test("a primary's safekeepers must be unique", () => {
    expect(
      parseError({ ...minimalSpec(), safekeeper_connstrings: ["b:1", "a:1", "c:1", "a:1"] }),
    ).toBe("duplicate entry in safekeeper_connstrings: a:1!");
  });

  test("validate: an empty list for a primary", () => {
    const pspec = parse(minimalSpec());
    const empty: ParsedSpec = { ...pspec, safekeeperConnstrings: [] };
    expect(errorMessage(() => validateParsedSpec(empty))).toBe("safekeeper_connstrings is empty");
    const replica: ParsedSpec = {
      ...empty,
      spec: decode(ComputeSpec, { ...minimalSpec(), mode: "Replica" }),
    };
    expect(() => validateParsedSpec(replica)).not.toThrow();
  });
});

describe("tenant and timeline", () => {
  test("the fields win", () => {
    const p = parse(minimalSpec());
    expect(p.tenantId).toBe(TENANT);
    expect(p.timelineId).toBe(TIMELINE);
  });

  test("the settings are the fallback, lower-cased", () => {
    const doc = minimalSpec();
    delete doc.tenant_id;
    delete doc.timeline_id;
    doc.cluster.settings = [
      setting("neon.tenant_id", TENANT.toUpperCase()),
      setting("neon.timeline_id", TIMELINE),
    ];
    const p = parse(doc);
    expect(p.tenantId).toBe(TENANT);
    expect(p.timelineId).toBe(TIMELINE);
  });

  test("missing ids", () => {
    const doc = minimalSpec();
    delete doc.tenant_id;
    expect(parseError(doc)).toBe("tenant id should be provided");
    const doc2 = minimalSpec();
    delete doc2.timeline_id;
    expect(parseError(doc2)).toBe("timeline id should be provided");
  });

  test("invalid ids in settings, with the hex parser's error as the cause", () => {
    const doc = minimalSpec();
    delete doc.tenant_id;
    doc.cluster.settings = [setting("neon.tenant_id", "xyz")];
    let err: unknown;
    try {
      parse(doc);
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toBe("invalid tenant id");
    expect(((err as Error).cause as Error).message).toBe("Odd number of digits");

    const doc2 = minimalSpec();
    delete doc2.timeline_id;
    doc2.cluster.settings = [setting("neon.timeline_id", TIMELINE.slice(2))];
    expect(parseError(doc2)).toBe("invalid timeline id");
  });

  test("the hex id parser's errors", () => {
    expect(errorMessage(() => parseHexId("abc"))).toBe("Odd number of digits");
    expect(errorMessage(() => parseHexId("ab"))).toBe("Invalid string length");
    expect(
      errorMessage(() => parseHexId(`${TENANT.slice(0, 31)}g`.padEnd(32, "0").slice(0, 32))),
    ).toBe("Invalid character 'g' at position 31");
    expect(parseHexId(TENANT.toUpperCase())).toBe(TENANT);
  });
});

describe("endpoint storage and the rest", () => {
  test("the fields win over the settings", () => {
    const doc = minimalSpec();
    doc.endpoint_storage_addr = "endpoint-storage:9993";
    doc.endpoint_storage_token = "tok";
    doc.storage_auth_token = "auth";
    doc.cluster.settings = [
      setting("neon.endpoint_storage_addr", "other:1"),
      setting("neon.endpoint_storage_token", "other"),
    ];
    const p = parse(doc);
    expect(p.endpointStorageAddr).toBe(doc.endpoint_storage_addr);
    expect(p.endpointStorageToken).toBe(doc.endpoint_storage_token);
    expect(p.storageAuthToken).toBe(doc.storage_auth_token);
  });

  test("the settings are the fallback", () => {
    const doc = minimalSpec();
    doc.cluster.settings = [
      setting("neon.endpoint_storage_addr", "es:9993"),
      setting("neon.endpoint_storage_token", "jwt"),
    ];
    const p = parse(doc);
    expect(p.endpointStorageAddr).toBe("es:9993");
    expect(p.endpointStorageToken).toBe("jwt");
  });

  test("absent everywhere gives null", () => {
    const p = parse(minimalSpec());
    expect(p.endpointStorageAddr).toBeNull();
    expect(p.endpointStorageToken).toBeNull();
    expect(p.storageAuthToken).toBeNull();
  });

  test("checks run in the reference's order: pageserver before safekeepers before ids", () => {
    const doc = settingsOnly([]);
    expect(parseError(doc)).toBe("pageserver connection information should be provided");
    doc.pageserver_connstring = "postgres://p";
    expect(parseError(doc)).toBe("safekeeper connstrings should be provided");
    doc.safekeeper_connstrings = ["s:1"];
    expect(parseError(doc)).toBe("tenant id should be provided");
    doc.tenant_id = TENANT;
    expect(parseError(doc)).toBe("timeline id should be provided");
  });
});

describe("parseU32 (u32::from_str)", () => {
  test("accepts decimal with an optional '+', rejects the rest with Rust's texts", () => {
    expect(parseU32("4096")).toBe(4096);
    expect(parseU32("+7")).toBe(7);
    expect(parseU32("0004294967295")).toBe(4294967295);
    expect(errorMessage(() => parseU32(""))).toBe("cannot parse integer from empty string");
    expect(errorMessage(() => parseU32("-1"))).toBe("invalid digit found in string");
    expect(errorMessage(() => parseU32("+"))).toBe("invalid digit found in string");
    expect(errorMessage(() => parseU32(" 1"))).toBe("invalid digit found in string");
    expect(errorMessage(() => parseU32("4294967296"))).toBe(
      "number too large to fit in target type",
    );
  });
});

describe("reserved role names", () => {
  const withRoles = (roles: string[], delta: Json[] | null = null) =>
    decode(ComputeSpec, {
      ...minimalSpec(),
      cluster: { ...minimalSpec().cluster, roles: roles.map((name) => ({ name })) },
      delta_operations: delta,
    });
  const refused = (spec: ComputeSpec, priv = "neon_superuser") =>
    errorMessage(() => parseSpec(spec, { privilegedRoleName: priv }));

  test("the privileged role, compute_ctl's own roles and Postgres's are refused with their path", () => {
    expect(refused(withRoles(["alice", "neon_superuser"]))).toBe(
      'spec.cluster.roles[1].name: role name "neon_superuser" is reserved: it is the privileged role (--privileged-role-name)',
    );
    expect(refused(withRoles(["cloud_admin"]))).toContain('"cloud_admin" is reserved: compute_ctl');
    expect(refused(withRoles(["zenith_admin"]))).toContain("compute_ctl connects as it");
    for (const name of ["pg_monitor", "pg_x", "public", "none"]) {
      expect(refused(withRoles([name]))).toContain("Postgres reserves it");
    }
    // --privileged-role-name decides which name is the privileged one.
    expect(refused(withRoles(["databricks_superuser"]), "databricks_superuser")).toContain(
      "privileged role",
    );
    expect(parseSpec(withRoles(["neon_superuser"]), { privilegedRoleName: "other" })).toBeDefined();
  });

  test("delete_role and rename_role operations on reserved names", () => {
    expect(refused(withRoles([], [{ action: "delete_role", name: "cloud_admin" }]))).toBe(
      'spec.delta_operations[0].name: role name "cloud_admin" is reserved: compute_ctl connects as it',
    );
    expect(
      refused(withRoles([], [{ action: "rename_role", name: "bob", new_name: "pg_bob" }])),
    ).toContain("spec.delta_operations[0].new_name");
    // Other operations and ordinary names pass; without the option nothing is checked.
    const ok = withRoles(["alice", "Cloud_Admin", "pgx"], [{ action: "delete_db", name: "pg_db" }]);
    expect(parseSpec(ok, { privilegedRoleName: "neon_superuser" })).toBeDefined();
    expect(parseSpec(withRoles(["neon_superuser"]))).toBeDefined();
  });
});
