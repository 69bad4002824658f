// 420-424: reports and bans (docs/protocol.md, "Moderation"). Administrators are named in
// configuration (QPQ_ADMIN_IDENTITIES, lib/admins.ts).
//
// A server-wide ban (admins only) refuses login and resume, deletes the identity's sessions, and
// ends its open connections' sessions at once through the session signal of its RecipientQueue
// (the path RevokeDevice uses), so Enqueue needs no ban look-up. A per-channel ban (admins, or
// the channel's creator, or its admins for plain members) removes the identity from the channel,
// keeps it from being added again, and has every member's queue refuse its sender tag on that
// channel: again nothing on the Enqueue path reads D1.
import { and, desc, eq, lt, or, count, sql } from "drizzle-orm";
import { Method, pb, badRequest, forbidden, rateLimited } from "../../proto/index.ts";
import { unary, requireCaller, type MethodTable, type RpcContext } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { equalBytes, randomBytes } from "../lib/crypto.ts";
import { toHex } from "../../proto/util/hex.ts";
import { senderTag } from "../lib/sender-tag.ts";
import { queueOf } from "../durable/recipient-queue-client.ts";
import { bans, channelMembers, reports, sessions } from "../../schema/tables.ts";
import {
  announceMembership,
  loadGroup,
  memberOf,
  requireMember,
  setRules,
  type Channel,
} from "../lib/channel-members.ts";
import type { Caller } from "../lib/caller-assertion.ts";
import { live } from "../lib/bans.ts";

const EMPTY = new Uint8Array(0);

function isAdmin(ctx: RpcContext, caller: Caller): boolean {
  return ctx.deps.admins.has(toHex(caller.identityKey));
}

function requireAdmin(ctx: RpcContext): Caller {
  const caller = requireCaller(ctx);
  if (!isAdmin(ctx, caller)) throw forbidden("only a server administrator may do this");
  return caller;
}

function text(value: string, max: number, field: string): string {
  const s = value.normalize("NFC");
  if ([...s].length > max) throw badRequest(`${field} must be at most ${max} characters`);
  return s;
}

/**
 * Who may ban `target` from `group`: a server admin anyone but the creator; the creator anyone
 * else; a channel admin plain members only.
 */
function requireChannelModerator(ctx: RpcContext, caller: Caller, group: Channel, target: Uint8Array): void {
  const targetRole = memberOf(group, target)?.role;
  if (targetRole === "creator") throw forbidden("the channel's creator cannot be banned from it");
  if (isAdmin(ctx, caller)) return;
  const role = requireMember(group, caller.identityKey).role;
  if (role === "creator") return;
  if (role === "admin" && targetRole !== "admin") return;
  throw forbidden("only a server administrator, the channel's creator or its admins may ban from this channel");
}

export const moderationMethods: MethodTable = {
  // Any user may report any identity; the evidence is encrypted for the moderators and opaque here.
  [Method.ReportMessage]: unary("user", pb.ReportMessageRequest, pb.ReportMessageResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    const reported = v.identityKey(req.reportedKey, "reported_key");
    const channelId = v.channelId(req.channelId);
    if (req.evidence.length === 0) throw badRequest("evidence is required (encrypted for the moderators)");
    if (req.evidence.length > LIMITS.reportEvidenceMax)
      throw badRequest(`evidence must be at most ${LIMITS.reportEvidenceMax} bytes, got ${req.evidence.length}`);
    const reason = text(req.reason, LIMITS.reportReasonMax, "reason");
    const { db } = ctx.deps;
    const id = randomBytes(16);
    // Conditional insert: one reporter holds at most reportsPerReporter stored reports.
    const inserted = await db.run(sql`
      INSERT INTO ${reports} (id, reporter_key, reported_key, channel_id, evidence, reason, created_at)
      SELECT ${id}, ${caller.identityKey}, ${reported}, ${channelId}, ${req.evidence}, ${reason}, ${Date.now()}
      WHERE (SELECT COUNT(*) FROM ${reports} WHERE reporter_key = ${caller.identityKey}) < ${LIMITS.reportsPerReporter}`);
    if (inserted.meta.changes !== 1) {
      throw rateLimited(
        `at most ${LIMITS.reportsPerReporter} reports per reporter are kept; wait for moderation`,
        3_600_000,
      );
    }
    return { reportId: id };
  }),

  [Method.BanUser]: unary("user", pb.BanUserRequest, pb.BanUserResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    const target = v.identityKey(req.identityKey, "identity_key");
    const channelId = v.channelId(req.channelId);
    const reason = text(req.reason, LIMITS.banReasonMax, "reason");
    const expiresAt = Number(req.expiresAtMs);
    const now = Date.now();
    if (!Number.isSafeInteger(expiresAt) || (expiresAt !== 0 && expiresAt <= now))
      throw badRequest("expires_at_ms must be 0 (permanent) or a time in the future");
    if (equalBytes(target, caller.identityKey)) throw badRequest("an identity cannot ban itself");
    const { db } = ctx.deps;
    const ban = { identityKey: target, channelId, reason, bannedBy: caller.identityKey, createdAt: now, expiresAt };
    const upsert = db
      .insert(bans)
      .values(ban)
      .onConflictDoUpdate({
        target: [bans.identityKey, bans.channelId],
        set: { reason, bannedBy: caller.identityKey, createdAt: now, expiresAt },
      });

    if (channelId.length === 0) {
      requireAdmin(ctx);
      if (ctx.deps.admins.has(toHex(target))) throw forbidden("a configured administrator cannot be banned");
      // The ban first (no new login or resume), then the sessions, then the open connections.
      await db.batch([upsert, db.delete(sessions).where(eq(sessions.identityKey, target))]);
      await queueOf(ctx.deps, target).endSessions(expiresAt);
      return {};
    }

    const group = await loadGroup(ctx.deps, channelId);
    requireChannelModerator(ctx, caller, group, target);
    const held = await db
      .select({ n: count() })
      .from(bans)
      .where(and(eq(bans.channelId, channelId), live(now)))
      .get();
    if ((held?.n ?? 0) >= LIMITS.channelBansMax)
      throw forbidden(`a channel holds at most ${LIMITS.channelBansMax} bans; lift one first`);
    const wasMember = memberOf(group, target) !== undefined;
    await db.batch([
      upsert,
      db
        .delete(channelMembers)
        .where(and(eq(channelMembers.channelId, channelId), eq(channelMembers.identityKey, target))),
    ]);
    const sender = await senderTag(await ctx.deps.senderTagKey, target);
    const others = group.members.map((m) => m.identityKey).filter((k) => !equalBytes(k, target));
    await Promise.all([
      setRules(ctx.deps, others, channelId, { ban: [{ sender, expiresAt }] }),
      wasMember ? setRules(ctx.deps, [target], channelId, { forget: true }) : null,
      announceMembership(ctx.deps, channelId, wasMember ? [...others, target] : others, [
        { member: target, change: "banned", actor: caller.identityKey },
      ]),
    ]);
    return {};
  }),

  // Lifting a ban does not add the identity back to the channel.
  [Method.UnbanUser]: unary("user", pb.UnbanUserRequest, pb.UnbanUserResponse, async (ctx, req) => {
    const caller = requireCaller(ctx);
    const target = v.identityKey(req.identityKey, "identity_key");
    const channelId = v.channelId(req.channelId);
    const { db } = ctx.deps;
    const remove = db.delete(bans).where(and(eq(bans.identityKey, target), eq(bans.channelId, channelId)));
    if (channelId.length === 0) {
      requireAdmin(ctx);
      await remove;
      await queueOf(ctx.deps, target).liftBan();
      return {};
    }
    const group = await loadGroup(ctx.deps, channelId);
    requireChannelModerator(ctx, caller, group, target);
    await remove;
    const sender = await senderTag(await ctx.deps.senderTagKey, target);
    await setRules(
      ctx.deps,
      group.members.map((m) => m.identityKey),
      channelId,
      { unban: [sender] },
    );
    return {};
  }),

  // Newest first; after_report_id continues below that report.
  [Method.ListReports]: unary("user", pb.ListReportsRequest, pb.ListReportsResponse, async (ctx, req) => {
    requireAdmin(ctx);
    const limit = req.limit === 0 ? LIMITS.listReportsMax : Math.min(req.limit, LIMITS.listReportsMax);
    const { db } = ctx.deps;
    let below: { createdAt: number; id: Uint8Array } | undefined;
    if (req.afterReportId.length > 0) {
      if (req.afterReportId.length !== 16)
        throw badRequest(`after_report_id must be 16 bytes, got ${req.afterReportId.length}`);
      below = await db
        .select({ createdAt: reports.createdAt, id: reports.id })
        .from(reports)
        .where(eq(reports.id, req.afterReportId))
        .get();
      if (!below) return { reports: [] };
    }
    const rows = await db
      .select()
      .from(reports)
      .where(
        below
          ? or(
              lt(reports.createdAt, below.createdAt),
              and(eq(reports.createdAt, below.createdAt), lt(reports.id, below.id)),
            )
          : undefined,
      )
      .orderBy(desc(reports.createdAt), desc(reports.id))
      .limit(limit)
      .all();
    return {
      reports: rows.map((r) => ({
        reportId: r.id,
        reporterKey: r.reporterKey,
        reportedKey: r.reportedKey,
        channelId: r.channelId,
        evidence: r.evidence,
        reason: r.reason,
        createdAtMs: r.createdAt,
      })),
    };
  }),

  // Live bans of the server (channel_id empty) or of one channel; expired ones are left out.
  [Method.ListBanned]: unary("user", pb.ListBannedRequest, pb.ListBannedResponse, async (ctx, req) => {
    requireAdmin(ctx);
    const channelId = v.channelId(req.channelId);
    const rows = await ctx.deps.db
      .select()
      .from(bans)
      .where(and(eq(bans.channelId, channelId.length === 0 ? EMPTY : channelId), live(Date.now())))
      .orderBy(desc(bans.createdAt))
      .limit(LIMITS.listBannedMax)
      .all();
    return {
      bans: rows.map((b) => ({
        identityKey: b.identityKey,
        channelId: b.channelId,
        reason: b.reason,
        createdAtMs: b.createdAt,
        expiresAtMs: b.expiresAt,
      })),
    };
  }),
};
