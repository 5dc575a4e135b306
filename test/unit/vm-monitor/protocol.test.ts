import { describe, expect, test } from "bun:test";
import {
  negotiate,
  ProtocolError,
  parseInbound,
  serializeOutbound,
} from "../../../src/vm-monitor/protocol.ts";

describe("version negotiation", () => {
  test("a range containing 1 agrees on 1", () => {
    expect(negotiate('{"min":1,"max":1}')).toMatchObject({
      kind: "agreed",
      reply: '{"version":1}',
    });
    expect(negotiate('{"min":0,"max":5}')).toMatchObject({
      kind: "agreed",
      reply: '{"version":1}',
    });
    // Extra keys are ignored.
    expect(negotiate('{"min":1,"max":2,"x":true}').kind).toBe("agreed");
  });

  test("a range above 1 is refused with the reference's text (no recursion on unknown versions)", () => {
    expect(negotiate('{"min":2,"max":3}')).toEqual({
      kind: "refused",
      reply: JSON.stringify({
        error:
          "Received protocol version range <unknown: 2> to <unknown: 3> which does not overlap with v1.0",
      }),
      reason:
        "Received protocol version range <unknown: 2> to <unknown: 3> which does not overlap with v1.0",
    });
    expect(negotiate('{"min":2,"max":2}').reply).toBe(
      JSON.stringify({
        error: "Received protocol version range <unknown: 2> which does not overlap with v1.0",
      }),
    );
    expect(negotiate('{"min":0,"max":0}').reply).toBe(
      JSON.stringify({
        error: "Received protocol version range <invalid: zero> which does not overlap with v1.0",
      }),
    );
  });

  test("min > max, bad JSON, missing or out-of-range versions: no reply, an error", () => {
    for (const bad of [
      '{"min":3,"max":1}',
      "{bad",
      "[]",
      '{"min":1}',
      '{"min":1,"max":256}',
      '{"min":-1,"max":1}',
      '{"min":"1","max":1}',
      '{"min":1.5,"max":2}',
    ]) {
      expect(() => negotiate(bad)).toThrow(ProtocolError);
    }
  });
});

describe("agent messages", () => {
  test("every type, adjacently tagged", () => {
    expect(
      parseInbound(
        '{"content":{"granted":{"cpu":2,"mem":8589934592}},"type":"UpscaleNotification","id":4}',
      ),
    ).toEqual({ type: "UpscaleNotification", id: 4, granted: { cpu: 2, mem: 8589934592 } });
    expect(
      parseInbound(
        '{"content":{"target":{"cpu":0.5,"mem":1024}},"type":"DownscaleRequest","id":6}',
      ),
    ).toEqual({ type: "DownscaleRequest", id: 6, target: { cpu: 0.5, mem: 1024 } });
    expect(parseInbound('{"content":{},"type":"HealthCheck","id":2}')).toEqual({
      type: "HealthCheck",
      id: 2,
    });
    expect(parseInbound('{"content":{"error":"x"},"type":"InvalidMessage","id":3}')).toEqual({
      type: "InvalidMessage",
      id: 3,
      error: "x",
    });
    expect(parseInbound('{"content":{"error":"y"},"type":"InternalError","id":8}')).toEqual({
      type: "InternalError",
      id: 8,
      error: "y",
    });
  });

  test("a HealthCheck without content is taken as {}", () => {
    expect(parseInbound('{"type":"HealthCheck","id":10}')).toEqual({ type: "HealthCheck", id: 10 });
  });

  test("unparsable text, unknown type, missing id or fields are errors", () => {
    for (const bad of [
      "not json",
      '"HealthCheck"',
      '{"content":{},"type":"Nope","id":2}',
      '{"content":{},"type":"HealthCheck"}',
      '{"content":{},"type":"HealthCheck","id":-2}',
      '{"content":{},"type":"HealthCheck","id":"2"}',
      '{"content":{},"id":2}',
      '{"content":{},"type":"UpscaleNotification","id":2}',
      '{"content":{"granted":{"cpu":1,"mem":1.5}},"type":"UpscaleNotification","id":2}',
      '{"content":{"target":{"mem":1}},"type":"DownscaleRequest","id":2}',
      '{"content":{},"type":"InvalidMessage","id":2}',
      '{"content":[],"type":"HealthCheck","id":2}',
    ]) {
      expect(() => parseInbound(bad)).toThrow(ProtocolError);
    }
  });
});

describe("monitor messages, internally tagged", () => {
  test("each shape", () => {
    expect(serializeOutbound({ type: "UpscaleRequest", id: 3 })).toBe(
      '{"type":"UpscaleRequest","id":3}',
    );
    expect(serializeOutbound({ type: "UpscaleConfirmation", id: 4 })).toBe(
      '{"type":"UpscaleConfirmation","id":4}',
    );
    expect(serializeOutbound({ type: "HealthCheck", id: 2 })).toBe('{"type":"HealthCheck","id":2}');
    expect(serializeOutbound({ type: "DownscaleResult", id: 6, ok: true, status: "s" })).toBe(
      '{"type":"DownscaleResult","Ok":true,"Status":"s","id":6}',
    );
    expect(serializeOutbound({ type: "InternalError", id: 6, error: "failed to downscale" })).toBe(
      '{"type":"InternalError","error":"failed to downscale","id":6}',
    );
  });
});
