// SDK for moderation (420-424): reports by anyone, bans by administrators (server-wide) or a
// channel's creator/admins (per channel), listings by administrators (docs/protocol.md, "Moderation").
import { Method, pb } from "../proto/index.ts";
import type { QpqClient } from "./client.ts";

const NONE = new Uint8Array(0);

/** Reports an identity with evidence encrypted for the moderators (opaque to the server); returns the report id. */
export async function reportMessage(
  client: QpqClient,
  r: { reportedKey: Uint8Array; evidence: Uint8Array; reason?: string; channelId?: Uint8Array },
): Promise<Uint8Array> {
  const res = await client.call(
    Method.ReportMessage,
    pb.ReportMessageRequest,
    { reportedKey: r.reportedKey, evidence: r.evidence, reason: r.reason ?? "", channelId: r.channelId ?? NONE },
    pb.ReportMessageResponse,
  );
  return res.reportId;
}

/** Bans server-wide (no channelId: administrators only) or from one channel; expiresAtMs 0 = permanent. */
export async function banUser(
  client: QpqClient,
  identityKey: Uint8Array,
  opts: { channelId?: Uint8Array; reason?: string; expiresAtMs?: number } = {},
): Promise<void> {
  await client.call(
    Method.BanUser,
    pb.BanUserRequest,
    { identityKey, channelId: opts.channelId ?? NONE, reason: opts.reason ?? "", expiresAtMs: opts.expiresAtMs ?? 0 },
    pb.BanUserResponse,
  );
}

export async function unbanUser(
  client: QpqClient,
  identityKey: Uint8Array,
  channelId: Uint8Array = NONE,
): Promise<void> {
  await client.call(Method.UnbanUser, pb.UnbanUserRequest, { identityKey, channelId }, pb.UnbanUserResponse);
}

/** Administrators only: newest first, pages continue after the last report id seen. */
export async function listReports(client: QpqClient, opts: { limit?: number; afterReportId?: Uint8Array } = {}) {
  const res = await client.call(
    Method.ListReports,
    pb.ListReportsRequest,
    { limit: opts.limit ?? 0, afterReportId: opts.afterReportId ?? NONE },
    pb.ListReportsResponse,
  );
  return res.reports.map((r) => ({
    reportId: r.reportId ?? NONE,
    reporterKey: r.reporterKey ?? NONE,
    reportedKey: r.reportedKey ?? NONE,
    channelId: r.channelId ?? NONE,
    evidence: r.evidence ?? NONE,
    reason: r.reason ?? "",
    createdAtMs: Number(r.createdAtMs),
  }));
}

/** Administrators only: live bans, server-wide (no channelId) or of one channel. */
export async function listBanned(client: QpqClient, channelId: Uint8Array = NONE) {
  const res = await client.call(Method.ListBanned, pb.ListBannedRequest, { channelId }, pb.ListBannedResponse);
  return res.bans.map((b) => ({
    identityKey: b.identityKey ?? NONE,
    channelId: b.channelId ?? NONE,
    reason: b.reason ?? "",
    createdAtMs: Number(b.createdAtMs),
    expiresAtMs: Number(b.expiresAtMs),
  }));
}
