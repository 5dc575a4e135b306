import { describe, expect, test } from "bun:test";
import { ConnstrError, parseConnstr, parseKeywordValue } from "../../../src/vm-monitor/connstr.ts";

describe("libpq keyword/value strings", () => {
  test("the default --filecache-connstr", () => {
    expect(
      parseConnstr(
        "host=localhost port=5432 dbname=postgres user=cloud_admin sslmode=disable application_name=vm-monitor",
      ),
    ).toEqual({
      host: "localhost",
      port: 5432,
      path: undefined,
      database: "postgres",
      username: "cloud_admin",
      password: undefined,
      applicationName: "vm-monitor",
      connectTimeout: undefined,
      options: undefined,
    });
  });

  test("quoting: single quotes, escaped quote and backslash, spaces around =", () => {
    const kv = parseKeywordValue(
      "user = 'a b' password='it\\'s \\\\ here' dbname=x\\ y options='-c search_path=public'  ",
    );
    expect(Object.fromEntries(kv)).toEqual({
      user: "a b",
      password: "it's \\ here",
      dbname: "x y",
      options: "-c search_path=public",
    });
    expect(Object.fromEntries(parseKeywordValue("password=''  user=u"))).toEqual({
      password: "",
      user: "u",
    });
  });

  test("errors are libpq's", () => {
    expect(() => parseKeywordValue("host")).toThrow('missing "=" after "host"');
    expect(() => parseKeywordValue("user='abc")).toThrow("unterminated quoted string");
    expect(() => parseKeywordValue("bogus=1")).toThrow('invalid connection option "bogus"');
    expect(() => parseConnstr("user=u port=99999")).toThrow(ConnstrError);
    expect(() => parseConnstr("user=u port=abc")).toThrow('invalid port "abc"');
    expect(() => parseConnstr("host=h")).toThrow("names no user");
    expect(() => parseConnstr("user=u sslmode=require")).toThrow("sslmode=require needs TLS");
  });

  test("defaults, unix sockets, hostaddr, the application name", () => {
    const o = parseConnstr("user=u host=/var/run/postgresql port=5433 connect_timeout=3");
    expect(o.path).toBe("/var/run/postgresql/.s.PGSQL.5433");
    expect(o.database).toBe("u");
    expect(o.connectTimeout).toBe(3);
    expect(o.applicationName).toBe("vm-monitor");
    expect(parseConnstr("user=u host=h hostaddr=127.0.0.1").host).toBe("127.0.0.1");
    expect(parseConnstr("user=u application_name=other").applicationName).toBe("other");
  });

  test("a postgres:// URL is accepted too", () => {
    const o = parseConnstr("postgresql://cloud_admin:p%40ss@127.0.0.1:6000/db?application_name=x");
    expect(o).toMatchObject({
      host: "127.0.0.1",
      port: 6000,
      username: "cloud_admin",
      password: "p@ss",
      database: "db",
      applicationName: "x",
    });
  });
});
