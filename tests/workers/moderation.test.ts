// Moderation (420-424): reports with encrypted evidence, server-wide bans (login and resume
// refused, sessions deleted, the open connections signalled), per-channel bans (removed, not
// re-addable, Enqueue on that channel refused by the members' queues), admin-only listing.
// The administrator is QPQ_ADMIN_IDENTITIES in vitest.config.ts.
import { describe, it, expect } from "vitest";
import { exports } from "cloudflare:workers";
import { Method, Status, pb, parseSessionSignal } from "../../proto/index.ts";
import { env, errorOf, hex, ok, randomBytes, randomKey, registeredKey, rpc } from "./helpers.ts";
import { login, register } from "./opaque-client.ts";
import { enqueueAs } from "./delivery-client.ts";

const ADMIN = Uint8Array.from({ length: 32 }, () => 0xad);
const NONE = new Uint8Array(0);
const PASSWORD = "correct horse battery staple";

function ban(
  caller: Uint8Array,
  identityKey: Uint8Array,
  channelId: Uint8Array = NONE,
  extra: { reason?: string; expiresAtMs?: number } = {},
) {
  return rpc(Method.BanUser, pb.BanUserRequest.encode({ identityKey, channelId, ...extra }).finish(), { caller });
}
function unban(caller: Uint8Array, identityKey: Uint8Array, channelId: Uint8Array = NONE) {
  return rpc(Method.UnbanUser, pb.UnbanUserRequest.encode({ identityKey, channelId }).finish(), { caller });
}
function report(caller: Uint8Array, reportedKey: Uint8Array, evidence: Uint8Array, reason = "spam") {
  return rpc(Method.ReportMessage, pb.ReportMessageRequest.encode({ reportedKey, evidence, reason }).finish(), {
    caller,
  });
}
function listBanned(caller: Uint8Array, channelId: Uint8Array = NONE) {
  return rpc(Method.ListBanned, pb.ListBannedRequest.encode({ channelId }).finish(), { caller });
}
async function group(creator: Uint8Array, members: Uint8Array[]): Promise<Uint8Array> {
  const res = await rpc(Method.CreateChannel, pb.CreateChannelRequest.encode({ memberKeys: members }).finish(), {
    caller: creator,
  });
  return ok(res, pb.CreateChannelResponse).channelId;
}

describe("ReportMessage and ListReports", () => {
  it("stores a report with its evidence, listed newest first to admins only", async () => {
    const [reporter, reported] = [randomKey(), randomKey()];
    const evidence = randomBytes(2048);
    const first = ok(await report(reporter, reported, evidence, "abuse"), pb.ReportMessageResponse).reportId;
    const second = ok(await report(reporter, reported, Uint8Array.of(1)), pb.ReportMessageResponse).reportId;
    expect(first).toHaveLength(16);

    expect(
      (await rpc(Method.ListReports, pb.ListReportsRequest.encode({}).finish(), { caller: reporter })).status,
    ).toBe(Status.Forbidden);
    const all = ok(
      await rpc(Method.ListReports, pb.ListReportsRequest.encode({ limit: 50 }).finish(), { caller: ADMIN }),
      pb.ListReportsResponse,
    ).reports.filter((r) => hex(r.reporterKey) === hex(reporter));
    expect(all.map((r) => hex(r.reportId))).toEqual([hex(second), hex(first)]);
    expect(hex(all[1].evidence)).toBe(hex(evidence));
    expect(all[1].reason).toBe("abuse");
    expect(hex(all[1].reportedKey)).toBe(hex(reported));
    // Paging: below the second report comes the first.
    const page = ok(
      await rpc(Method.ListReports, pb.ListReportsRequest.encode({ limit: 1, afterReportId: second }).finish(), {
        caller: ADMIN,
      }),
      pb.ListReportsResponse,
    ).reports;
    expect(page).toHaveLength(1);
  });

  it("keeps at most 100 reports per reporter, then answers RateLimited", async () => {
    const [reporter, reported] = [randomKey(), randomKey()];
    for (let i = 0; i < 100; i++) ok(await report(reporter, reported, Uint8Array.of(i)), pb.ReportMessageResponse);
    const over = await report(reporter, reported, Uint8Array.of(1));
    expect(over.status).toBe(Status.RateLimited);
    expect(errorOf(over).retryAfterMs).toBeGreaterThan(0);
    // Another reporter is not affected.
    ok(await report(randomKey(), reported, Uint8Array.of(1)), pb.ReportMessageResponse);
  });

  it("validates evidence and the reported key", async () => {
    const reporter = randomKey();
    expect((await report(reporter, randomKey(), NONE)).status).toBe(Status.BadRequest);
    const big = await report(reporter, randomKey(), new Uint8Array(64 * 1024 + 1));
    expect(big.status).toBe(Status.BadRequest);
    expect((await report(reporter, new Uint8Array(3), Uint8Array.of(1))).status).toBe(Status.BadRequest);
  });
});

/** A fresh push subscription of the front for `assertion`'s identity, and its first message. */
async function resubscribe(assertion: string): Promise<{ ws: WebSocket; first: Promise<unknown> }> {
  const sub = await exports.default.fetch("https://edge/push", {
    headers: { Upgrade: "websocket", "x-qpq-front-auth": env.FRONT_SECRET, "x-qpq-caller": assertion },
  });
  const ws = sub.webSocket!;
  const first = new Promise<unknown>((resolve) =>
    ws.addEventListener("message", (e) => resolve(typeof e.data === "string" ? parseSessionSignal(e.data) : "binary")),
  );
  ws.accept();
  return { ws, first };
}

describe("server-wide bans", () => {
  it("only admins ban; a banned user cannot log in or resume, its sessions end, and unbanning lets it back", async () => {
    const username = `ban-${crypto.randomUUID().slice(0, 12)}`;
    const key = randomKey();
    expect(await register(username, PASSWORD, key)).toBe(true);
    const session = await login(username, PASSWORD, key);
    expect(session.res.status).toBe(Status.Ok);

    // The front's push subscription for this identity: it must hear the ban.
    const sub = await exports.default.fetch("https://edge/push", {
      headers: { Upgrade: "websocket", "x-qpq-front-auth": env.FRONT_SECRET, "x-qpq-caller": session.assertion! },
    });
    const ws = sub.webSocket!;
    ws.accept();
    const signal = new Promise<unknown>((resolve) =>
      ws.addEventListener("message", (e) => {
        if (typeof e.data === "string") resolve(parseSessionSignal(e.data));
      }),
    );

    expect((await ban(randomKey(), key)).status).toBe(Status.Forbidden);
    expect((await ban(ADMIN, ADMIN)).status).toBe(Status.BadRequest);
    expect((await ban(ADMIN, key, NONE, { expiresAtMs: 1 })).status).toBe(Status.BadRequest);
    ok(await ban(ADMIN, key, NONE, { reason: "spam" }), pb.BanUserResponse);
    expect(await signal).toEqual({ banned: true });
    ws.close(1000, "done");
    // A cold-path call under the still unexpired assertion is refused by the edge itself.
    const listed0 = await rpc(Method.ListDevices, pb.ListDevicesRequest.encode({}).finish(), {
      caller: session.assertion!,
    });
    expect(listed0.status).toBe(Status.Unauthorized);
    expect(errorOf(listed0).message).toContain("banned");

    const refused = await login(username, PASSWORD, key);
    expect(refused.res.status).toBe(Status.Forbidden);
    expect(errorOf(refused.res).message).toContain("banned");
    const resume = await rpc(
      Method.SessionResume,
      pb.SessionResumeRequest.encode({ accessToken: session.token! }).finish(),
    );
    expect(resume.status).toBe(Status.Unauthorized); // the ban deleted the session

    // A front whose push socket was down when the ban went out hears it on subscribing again.
    const late = await resubscribe(session.assertion!);
    expect(await late.first).toEqual({ banned: true });
    late.ws.close(1000, "done");

    const listed = ok(await listBanned(ADMIN), pb.ListBannedResponse).bans.map((b) => hex(b.identityKey));
    expect(listed).toContain(hex(key));
    expect((await listBanned(randomKey())).status).toBe(Status.Forbidden);

    expect((await unban(randomKey(), key)).status).toBe(Status.Forbidden);
    ok(await unban(ADMIN, key), pb.UnbanUserResponse);
    const again = await login(username, PASSWORD, key);
    expect(again.res.status).toBe(Status.Ok);
    // Lifted: a new subscription hears the next message, not the ban.
    const after = await resubscribe(again.assertion!);
    ok(await enqueueAs(await registeredKey(), key, Uint8Array.of(1)), pb.EnqueueResponse);
    expect(await after.first).toBe("binary");
    after.ws.close(1000, "done");
  });
});

describe("per-channel bans", () => {
  it("removes the member, refuses its enqueues on that channel, keeps it out, and lifts cleanly", async () => {
    const [creator, bob, mallory] = [await registeredKey(), await registeredKey(), await registeredKey()];
    const id = await group(creator, [bob, mallory]);
    const other = randomBytes(16);

    // A plain member may not ban; the creator may.
    expect((await ban(bob, mallory, id)).status).toBe(Status.Forbidden);
    expect((await ban(mallory, creator, id)).status).toBe(Status.Forbidden);
    ok(await ban(creator, mallory, id, { reason: "spam" }), pb.BanUserResponse);

    const members = ok(
      await rpc(Method.ListGroupMembers, pb.ListGroupMembersRequest.encode({ channelId: id }).finish(), {
        caller: bob,
      }),
      pb.ListGroupMembersResponse,
    ).members.map((m) => hex(m.identityKey));
    expect(members).not.toContain(hex(mallory));

    const refused = await enqueueAs(mallory, bob, Uint8Array.of(1), { channelId: id });
    expect(refused.status).toBe(Status.Forbidden);
    expect(errorOf(refused).message).toContain("banned from this channel");
    ok(await enqueueAs(mallory, bob, Uint8Array.of(2), { channelId: other }), pb.EnqueueResponse);
    ok(await enqueueAs(randomKey(), bob, Uint8Array.of(3), { channelId: id }), pb.EnqueueResponse);

    const readd = await rpc(
      Method.UpdateGroupMetadata,
      pb.UpdateGroupMetadataRequest.encode({ channelId: id, addMemberKeys: [mallory] }).finish(),
      { caller: creator },
    );
    expect(readd.status).toBe(Status.Forbidden);
    // A member added after the ban refuses mallory's enqueues too.
    const late = await registeredKey();
    ok(
      await rpc(
        Method.UpdateGroupMetadata,
        pb.UpdateGroupMetadataRequest.encode({ channelId: id, addMemberKeys: [late] }).finish(),
        { caller: creator },
      ),
      pb.UpdateGroupMetadataResponse,
    );
    expect((await enqueueAs(mallory, late, Uint8Array.of(4), { channelId: id })).status).toBe(Status.Forbidden);

    const listed = ok(await listBanned(ADMIN, id), pb.ListBannedResponse).bans;
    expect(listed.map((b) => hex(b.identityKey))).toEqual([hex(mallory)]);

    ok(await unban(creator, mallory, id), pb.UnbanUserResponse);
    ok(await enqueueAs(mallory, bob, Uint8Array.of(5), { channelId: id }), pb.EnqueueResponse);
    ok(await enqueueAs(mallory, late, Uint8Array.of(6), { channelId: id }), pb.EnqueueResponse);
  });

  it("lets a channel admin ban plain members but not other admins", async () => {
    const [creator, admin1, admin2, member] = [randomKey(), randomKey(), randomKey(), randomKey()];
    const id = await group(creator, [admin1, admin2, member]);
    ok(
      await rpc(
        Method.UpdateGroupMetadata,
        pb.UpdateGroupMetadataRequest.encode({ channelId: id, makeAdminKeys: [admin1, admin2] }).finish(),
        { caller: creator },
      ),
      pb.UpdateGroupMetadataResponse,
    );
    expect((await ban(admin1, admin2, id)).status).toBe(Status.Forbidden);
    ok(await ban(admin1, member, id), pb.BanUserResponse);
    // A server admin may ban from any channel, but never its creator.
    ok(await ban(ADMIN, admin2, id), pb.BanUserResponse);
    expect((await ban(ADMIN, creator, id)).status).toBe(Status.Forbidden);
  });
});

describe("SessionResume of a banned identity", () => {
  it("is Forbidden while a server-wide ban holds, even with a live session", async () => {
    const username = `ban-${crypto.randomUUID().slice(0, 12)}`;
    const key = randomKey();
    expect(await register(username, PASSWORD, key)).toBe(true);
    const session = await login(username, PASSWORD, key);
    // A ban recorded without ending the sessions (as if the deletion had not run yet).
    await env.DB.prepare(
      "INSERT INTO bans (identity_key, channel_id, reason, banned_by, created_at, expires_at) VALUES (?, x'', 'r', ?, 0, 0)",
    )
      .bind(key, ADMIN)
      .run();
    const resume = () =>
      rpc(Method.SessionResume, pb.SessionResumeRequest.encode({ accessToken: session.token! }).finish());
    expect((await resume()).status).toBe(Status.Forbidden);
    ok(await unban(ADMIN, key), pb.UnbanUserResponse);
    expect((await resume()).status).toBe(Status.Ok);
  });
});
