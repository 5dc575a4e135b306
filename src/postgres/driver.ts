// postgres.js, loaded on its first use. Its module loads node:net, node:tls, node:crypto and
// node:stream with it; a compute that has not connected to Postgres yet (an Empty one waiting
// for /configure) does not hold them.
import type postgresJsType from "postgres";

export type PostgresJs = typeof postgresJsType;
export type PostgresError = InstanceType<PostgresJs["PostgresError"]>;

let driver: PostgresJs | undefined;

/** postgres.js's entry, `postgres(url, options)`; the module is imported on the first call. */
export function postgresJs(): PostgresJs {
  driver ??= (require("postgres") as { default: PostgresJs }).default;
  return driver;
}

/** Whether `err` is a server error from postgres.js (there is none before it is loaded). */
export function isPostgresError(err: unknown): err is PostgresError {
  return driver !== undefined && err instanceof driver.PostgresError;
}
