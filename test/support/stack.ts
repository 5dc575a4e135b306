// A local Neon-less stack for a compute: a fake pageserver serving a basebackup made by initdb,
// fake safekeepers, a pgbin wrapper that answers --sync-safekeepers and runs the real Postgres
// 15 otherwise, and the spec and config that point compute_ctl at them. The README's main job
// and the e2e tests use the same stack.
import { join } from "node:path";
import { formatLsn } from "../../src/api/lsn.ts";
import { basebackupTemplate } from "../fakes/basebackup-template.ts";
import { startFakeGrpcPageserver } from "../fakes/grpc-pageserver.ts";
import { startFakePageserver } from "../fakes/pageserver.ts";
import { makePgbinWrapper } from "../fakes/pgbin.ts";
import { startFakeSafekeeper } from "../fakes/safekeeper.ts";
import { freePort } from "./ports.ts";
import { makeUserDir } from "./proc.ts";

export const TENANT = "b0554b632bd4d547a63b86c3630317e8";
export const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";
export const SYNC_LSN = "0/169AD58";

export type StackMode = "Primary" | "Replica" | "Static";

export interface StackOptions {
  mode?: StackMode;
  /** "agree": three safekeepers that agree (the fast path); "absent": nothing listens (slow path). */
  safekeepers?: "agree" | "absent";
  token?: string | null;
  pageserverFaults?: Parameters<typeof startFakePageserver>[0]["faults"];
  /**
   * "grpc": the spec gives pageserver_connection_info with both URLs and prefer_protocol grpc,
   * and a fake gRPC pageserver (with `grpcFaults`) serves the basebackup and the leases.
   */
  protocol?: "libpq" | "grpc";
  grpcFaults?: Parameters<typeof startFakeGrpcPageserver>[0]["faults"];
  /** valid_until (unix ms) answered to `lease lsn`, or null for "not granted". */
  lease?: (lsn: string) => number | null;
  template?: Parameters<typeof basebackupTemplate>[0];
  /** Extra top-level spec fields. */
  spec?: Record<string, unknown>;
  skipCatalogUpdates?: boolean;
  /** cluster.roles and cluster.databases of the spec (default none). */
  roles?: unknown[];
  databases?: unknown[];
  /** How the wrapper answers --sync-safekeepers (default: the template's checkpoint LSN). */
  sync?: Parameters<Awaited<ReturnType<typeof makePgbinWrapper>>["setSync"]>[0];
  /** Delay before the wrapper execs the real postgres. */
  startDelayMs?: number;
  /** The Postgres bin directory the wrapper runs (default the system's Postgres 15). */
  realBindir?: string;
}

export type Stack = Awaited<ReturnType<typeof startLocalStack>>;

export async function startLocalStack(opts: StackOptions = {}) {
  const dir = await makeUserDir("stack-");
  const token = opts.token === undefined ? null : opts.token;
  const template = await basebackupTemplate(opts.template);
  const pageserver = await startFakePageserver({
    basebackup: () => Bun.file(template.tarGzPath).stream() as unknown as AsyncIterable<Uint8Array>,
    token,
    tenantId: TENANT,
    timelineId: TIMELINE,
    lease: opts.lease,
    faults: opts.pageserverFaults,
  });
  const mode = opts.mode ?? "Primary";
  const grpcPageserver =
    opts.protocol === "grpc"
      ? await startFakeGrpcPageserver({
          basebackup: () =>
            Bun.file(template.tarGzPath).stream() as unknown as AsyncIterable<Uint8Array>,
          token,
          tenantId: TENANT,
          timelineId: TIMELINE,
          expectReplica: mode !== "Primary",
          lease: opts.lease ? (lsn) => opts.lease?.(formatLsn(lsn)) ?? null : undefined,
          faults: opts.grpcFaults,
        })
      : null;
  const safekeepers =
    (opts.safekeepers ?? "absent") === "agree"
      ? await Promise.all(
          [0, 1, 2].map(() =>
            startFakeSafekeeper({
              tenantId: TENANT,
              timelineId: TIMELINE,
              token,
              status: { flush: template.checkpointLsn, commit: template.checkpointLsn },
            }),
          ),
        )
      : [];
  const safekeeperAddrs = safekeepers.length
    ? safekeepers.map((s) => `127.0.0.1:${s.port}`)
    : [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
  const pgbin = await makePgbinWrapper(opts.realBindir ? { realBindir: opts.realBindir } : {});
  await pgbin.setSync({ lsn: template.checkpointLsn, ...opts.sync });
  if (opts.startDelayMs) await pgbin.setStartDelayMs(opts.startDelayMs);
  const pgPort = await freePort();
  const spec = {
    format_version: 1.0,
    cluster: {
      cluster_id: "local",
      name: "local",
      roles: opts.roles ?? [],
      databases: opts.databases ?? [],
      settings: [
        { name: "port", value: String(pgPort), vartype: "integer" },
        { name: "listen_addresses", value: "127.0.0.1", vartype: "string" },
        { name: "unix_socket_directories", value: dir, vartype: "string" },
        { name: "fsync", value: "off", vartype: "bool" },
      ],
    },
    tenant_id: TENANT,
    timeline_id: TIMELINE,
    endpoint_id: "ep-local",
    ...(grpcPageserver
      ? {
          pageserver_connection_info: {
            shard_count: 0,
            shards: {
              "0000": {
                pageservers: [{ id: 1, libpq_url: pageserver.url, grpc_url: grpcPageserver.url }],
              },
            },
            prefer_protocol: "grpc",
          },
        }
      : { pageserver_connstring: pageserver.url }),
    safekeeper_connstrings: safekeeperAddrs,
    mode: mode === "Static" ? { Static: template.checkpointLsn } : mode,
    skip_pg_catalog_updates: opts.skipCatalogUpdates ?? true,
    suspend_timeout_seconds: -1,
    ...(token ? { storage_auth_token: token } : {}),
    ...opts.spec,
  };
  return {
    dir,
    template,
    pageserver,
    grpcPageserver,
    safekeepers,
    pgbin,
    pgPort,
    socketDir: dir,
    spec,
    connstr: `postgresql://cloud_admin@127.0.0.1:${pgPort}/postgres`,
    pgdata: join(dir, "pgdata"),
    async stop() {
      await pageserver.stop();
      await grpcPageserver?.stop();
      for (const s of safekeepers) await s.stop();
    },
  };
}
