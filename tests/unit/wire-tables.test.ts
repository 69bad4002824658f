import { describe, it, expect } from "vitest";
import {
  Method,
  PushEvent,
  Status,
  isUnauthenticated,
  methodName,
  toErrorReply,
  badRequest,
  rateLimited,
  pb,
  decode,
  QpqError,
} from "../../proto/index.ts";

describe("method and status tables", () => {
  it("keep the wire values of the contract", () => {
    expect([
      Method.OpaqueRegisterStart,
      Method.SessionResume,
      Method.Enqueue,
      Method.BatchEnqueue,
      Method.FetchHybridKeys,
      Method.CreateChannel,
      Method.RotateKeys,
      Method.ListBanned,
      Method.ResolveIdentity,
      Method.AuditKeyTransparency,
      Method.DownloadBlob,
      Method.RegisterPushToken,
      Method.DeleteRecoveryBundle,
      Method.Health,
      Method.FederationHealth,
      Method.DeleteAccount,
    ]).toEqual([100, 104, 200, 205, 304, 400, 413, 424, 501, 520, 601, 710, 752, 802, 905, 950]);
    expect(Status).toEqual({
      Ok: 0,
      BadRequest: 1,
      Unauthorized: 2,
      Forbidden: 3,
      NotFound: 4,
      RateLimited: 5,
      DeadlineExceeded: 8,
      Unavailable: 9,
      Internal: 10,
      UnknownMethod: 11,
    });
  });

  it("keep the push event ids of wire-protocol.md §5; typing and presence are also request ids", () => {
    expect(PushEvent).toEqual({ NewMessage: 1000, Typing: 1001, Presence: 1002, Membership: 1003 });
    expect([Method.PushTyping, Method.PushPresence]).toEqual([PushEvent.Typing, PushEvent.Presence]);
    expect(methodName(1003)).toBeUndefined(); // PushMembership is only ever pushed
  });

  it("name only registered ids", () => {
    expect(methodName(200)).toBe("Enqueue");
    expect(methodName(199)).toBeUndefined();
  });

  it("lets only auth methods and Health run without a session", () => {
    for (const id of [100, 101, 102, 103, 104, 751, 802]) expect(isUnauthenticated(id)).toBe(true);
    for (const id of [200, 201, 300, 400, 500, 600, 750, 752, 800, 950, 900]) expect(isUnauthenticated(id)).toBe(false);
  });
});

describe("error taxonomy", () => {
  it("maps typed errors to their status and hides everything else", () => {
    expect(toErrorReply(badRequest("x"))).toEqual({ status: 1, message: "x", retryAfterMs: 0 });
    expect(toErrorReply(rateLimited("slow", 1500.2))).toEqual({ status: 5, message: "slow", retryAfterMs: 1501 });
    expect(toErrorReply(new Error("secret stack detail"))).toEqual({
      status: 10,
      message: "internal error",
      retryAfterMs: 0,
    });
  });

  it("turns undecodable protobuf into BadRequest", () => {
    const bad = Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f);
    expect(() => decode(pb.EnqueueRequest, bad, "EnqueueRequest")).toThrow(QpqError);
    try {
      decode(pb.EnqueueRequest, bad, "EnqueueRequest");
    } catch (e) {
      expect((e as QpqError).status).toBe(Status.BadRequest);
    }
  });

  it("ignores unknown protobuf fields (forward compatibility)", () => {
    const known = pb.HealthRequest.encode({}).finish();
    const withUnknown = new Uint8Array([...known, 0xa0, 0x06, 0x01]); // field 100, varint 1
    expect(() => decode(pb.HealthRequest, withUnknown, "HealthRequest")).not.toThrow();
  });
});
