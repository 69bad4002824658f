// Every bound the edge enforces, in one place, with defaults that configuration may lower or raise.
import type { AppEnv } from "../env.ts";
import { FETCH_WAIT_MAX_MS, GROUP_MEMBERS_MAX } from "../../proto/wire/limits.ts";
import type { RateLimit } from "./rate-bucket.ts";

export interface QueueLimits {
  defaultTtlSecs: number;
  maxTtlSecs: number;
  maxQueueMessages: number;
  maxQueueBytes: number;
  maxDevicesPerQueue: number;
  /** What one sender may hold in one recipient's queue (stored plus reserved). */
  maxSenderMessages: number;
  maxSenderBytes: number;
  /** Per-sender enqueue rate into one recipient's queue: a token bucket. */
  senderBurst: number;
  senderPerMinute: number;
}

export const LIMITS = {
  identityKey: 32,
  channelIdMax: 64,
  messageId: 16,
  deviceIdMax: 64,
  usernameMax: 64,
  keyPackageMax: 1024 * 1024,
  hybridKey: 32 + 1184, // lib/hybrid-key.ts checks each part
  fetchDefault: 64,
  fetchMax: 256,
  fetchWaitMaxMs: FETCH_WAIT_MAX_MS,
  batchRecipientsMax: 256,
  groupMembersMax: GROUP_MEMBERS_MAX,
  channelNameMax: 128,
  /** Group descriptions, in characters (UpdateGroupMetadata). */
  groupDescriptionMax: 1024,
  /** Per-channel bans one channel holds at once (each is a rule in every member's queue). */
  channelBansMax: 256,
  /** ReportMessage: evidence bytes, reason characters, and reports one reporter may have stored. */
  reportEvidenceMax: 64 * 1024,
  reportReasonMax: 256,
  reportsPerReporter: 100,
  /** ListReports answers at most this many (each carries up to 64 KiB of evidence). */
  listReportsMax: 50,
  /** ListBanned answers at most this many bans. */
  listBannedMax: 1000,
  /** BanUser reasons, in characters. */
  banReasonMax: 256,
  /** Groups whose members hear that a deleted account left (PushMembership); beyond, they do not. */
  deletedAccountGroupsAnnounced: 1000,
  keyPackagesPerIdentity: 1000,
  /** Total stored KeyPackage bytes per identity (1000 typical packages are far below this). */
  keyPackageBytesPerIdentity: 8 * 1024 * 1024,
  hybridKeysPerLookup: 256,
  pendingLoginMs: 60_000,
  /** Between OpaqueRegisterStart and OpaqueRegisterFinish on one connection. */
  pendingRegistrationMs: 60_000,
  authFloorMs: 5,
  /**
   * OpaqueLoginStart per username, across all fronts (lib/login-limit.ts): 10 at once, then one
   * a minute. It bounds online password guessing per account, so the front's per-address limit
   * can be generous for many users behind one NAT address.
   */
  loginAttemptsPerUsername: { burst: 10, perMinute: 1 },
  /** Devices per account, the default device included (RegisterDevice refuses a sixth). */
  devicesPerAccount: 5,
  /** Device names, in characters. */
  deviceNameMax: 64,
  /** APNs device tokens are 32 bytes and FCM registration tokens about 160 characters. */
  pushTokenMax: 512,
  /** A BatchEnqueue reservation not committed within this time frees its capacity. */
  reservationTtlMs: 30_000,
  /** Senders whose enqueue rate one queue tracks at once (least recently active dropped first). */
  senderBucketsMax: 4096,
  /** How long a queue remembers that its identity is not registered before asking D1 again. */
  unregisteredRecheckMs: 60_000,
} as const;

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

type LimitVars =
  | "DEFAULT_MESSAGE_TTL_SECS"
  | "MAX_QUEUE_MESSAGES"
  | "MAX_QUEUE_BYTES"
  | "MAX_SENDER_QUEUE_MESSAGES"
  | "MAX_SENDER_QUEUE_BYTES"
  | "SENDER_ENQUEUE_BURST"
  | "SENDER_ENQUEUE_PER_MINUTE";

export function limitsFrom(env: Pick<AppEnv, LimitVars>): QueueLimits {
  const defaultTtlSecs = positiveInt(env.DEFAULT_MESSAGE_TTL_SECS, 30 * 24 * 3600);
  const maxQueueMessages = positiveInt(env.MAX_QUEUE_MESSAGES, 10_000);
  const maxQueueBytes = positiveInt(env.MAX_QUEUE_BYTES, 256 * 1024 * 1024);
  return {
    defaultTtlSecs,
    maxTtlSecs: Math.max(defaultTtlSecs, 90 * 24 * 3600),
    maxQueueMessages,
    maxQueueBytes,
    maxDevicesPerQueue: LIMITS.devicesPerAccount,
    // By default one sender holds at most 10% of a queue's messages and 25% of its bytes, so
    // one sender alone can never fill a recipient's inbox for everyone else.
    maxSenderMessages: Math.min(
      maxQueueMessages,
      positiveInt(env.MAX_SENDER_QUEUE_MESSAGES, Math.max(1, Math.floor(maxQueueMessages / 10))),
    ),
    maxSenderBytes: Math.min(
      maxQueueBytes,
      positiveInt(env.MAX_SENDER_QUEUE_BYTES, Math.max(1, Math.floor(maxQueueBytes / 4))),
    ),
    senderBurst: positiveInt(env.SENDER_ENQUEUE_BURST, 200),
    senderPerMinute: positiveInt(env.SENDER_ENQUEUE_PER_MINUTE, 120),
  };
}

export function sessionTtlMs(env: Pick<AppEnv, "SESSION_TTL_SECS">): number {
  return positiveInt(env.SESSION_TTL_SECS, 30 * 24 * 3600) * 1000;
}

/** Blobs, recovery bundles and P2P endpoints (docs/security.md, "Limits"). */
export interface StorageLimits {
  /** Bytes one identity may hold in blobs it uploaded plus uploads it has open (BLOB_QUOTA_BYTES). */
  blobQuotaBytes: number;
  /** How long an uploaded blob stays downloadable after it completed (BLOB_TTL_SECS). */
  blobTtlMs: number;
  /** An upload that receives no chunk for this long is dropped with its chunks. */
  blobUploadIdleMs: number;
  /** Uploads one identity may have open at once. */
  blobUploadsOpenMax: number;
  /** New uploads one identity may start: a token bucket shared by every front. */
  blobUploadStarts: RateLimit;
  /** Identities one UploadBlob may name in share_with, and one uploader may share one blob with. */
  blobShareMax: number;
  blobGrantsPerOwnerMax: number;
  /** Completed blobs and abandoned uploads one sweep deletes at most (a cron run; each upload start too). */
  blobSweepBatch: number;
  recoveryBundleMax: number;
  /** FetchRecoveryBundle per token hash and per client address (IPv6: its /64), across every front. */
  recoveryFetchPerToken: RateLimit;
  recoveryFetchPerAddress: RateLimit;
  p2pAddressMax: number;
  p2pDefaultTtlSecs: number;
  p2pMaxTtlSecs: number;
}

export function storageLimitsFrom(env: Pick<AppEnv, "BLOB_QUOTA_BYTES" | "BLOB_TTL_SECS">): StorageLimits {
  return {
    blobQuotaBytes: positiveInt(env.BLOB_QUOTA_BYTES, 1024 * 1024 * 1024),
    blobTtlMs: positiveInt(env.BLOB_TTL_SECS, 30 * 24 * 3600) * 1000,
    blobUploadIdleMs: 24 * 3600 * 1000,
    blobUploadsOpenMax: 8,
    blobUploadStarts: { burst: 60, perHour: 120 },
    blobShareMax: GROUP_MEMBERS_MAX,
    blobGrantsPerOwnerMax: 1024,
    blobSweepBatch: 20,
    recoveryBundleMax: 64 * 1024,
    recoveryFetchPerToken: { burst: 3, perHour: 1 },
    recoveryFetchPerAddress: { burst: 10, perHour: 10 },
    p2pAddressMax: 512,
    p2pDefaultTtlSecs: 300,
    p2pMaxTtlSecs: 24 * 3600,
  };
}
