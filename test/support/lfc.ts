// An endpoint storage for LFC tests of a running compute: the fake service, the spec fields that
// point the compute at it, and the stand-in SQL to bake into the basebackup.
import { startFakeEndpointStorage } from "../fakes/endpoint-storage.ts";
import { TENANT, TIMELINE } from "./stack.ts";

const STANDIN = await Bun.file(
  new URL("../fixtures/neon_lfc_standin.sql", import.meta.url).pathname,
).text();

export async function endpointStorageFixture(
  opts: { prewarmSleepSeconds?: number; seeded?: boolean; endpoint?: string } = {},
) {
  const endpoint = opts.endpoint ?? "ep-local";
  const token = "endpoint-storage-token";
  const storage = await startFakeEndpointStorage({ tokens: { [token]: null } });
  if (opts.seeded) {
    storage.objects.set(
      `/${TENANT}/${TIMELINE}/${endpoint}/lfc_state`,
      Bun.zstdCompressSync(Buffer.from("saved lfc state")),
    );
  }
  const sleep = opts.prewarmSleepSeconds
    ? `UPDATE neon.fake_lfc SET prewarm_sleep = ${opts.prewarmSleepSeconds};\n`
    : "";
  return {
    storage,
    standinSql: `${STANDIN}\n${sleep}`,
    specFields: { endpoint_storage_addr: storage.addr, endpoint_storage_token: token },
  };
}
