// Every bound the edge enforces, in one place, with defaults that configuration may lower or raise.
import type { AppEnv } from "../env.ts";

export interface QueueLimits {
  defaultTtlSecs: number;
  maxTtlSecs: number;
  maxQueueMessages: number;
  maxQueueBytes: number;
  maxDevicesPerQueue: number;
}

export const LIMITS = {
  identityKey: 32,
  channelIdMax: 64,
  messageId: 16,
  deviceIdMax: 64,
  usernameMax: 64,
  keyPackageMax: 1024 * 1024,
  hybridKey: 32 + 1184,
  fetchDefault: 64,
  fetchMax: 256,
  fetchWaitMaxMs: 60_000,
  batchRecipientsMax: 256,
  groupMembersMax: 256,
  channelNameMax: 128,
  keyPackagesPerIdentity: 1000,
  hybridKeysPerLookup: 256,
  pendingLoginMs: 60_000,
  /** Between OpaqueRegisterStart and OpaqueRegisterFinish on one connection. */
  pendingRegistrationMs: 60_000,
  authFloorMs: 5,
  /** Default device plus up to five registered devices. */
  devicesPerQueue: 6,
} as const;

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

export function limitsFrom(env: Pick<AppEnv, "DEFAULT_MESSAGE_TTL_SECS" | "MAX_QUEUE_MESSAGES" | "MAX_QUEUE_BYTES">): QueueLimits {
  const defaultTtlSecs = positiveInt(env.DEFAULT_MESSAGE_TTL_SECS, 30 * 24 * 3600);
  return {
    defaultTtlSecs,
    maxTtlSecs: Math.max(defaultTtlSecs, 90 * 24 * 3600),
    maxQueueMessages: positiveInt(env.MAX_QUEUE_MESSAGES, 10_000),
    maxQueueBytes: positiveInt(env.MAX_QUEUE_BYTES, 256 * 1024 * 1024),
    maxDevicesPerQueue: LIMITS.devicesPerQueue,
  };
}

export function sessionTtlMs(env: Pick<AppEnv, "SESSION_TTL_SECS">): number {
  return positiveInt(env.SESSION_TTL_SECS, 30 * 24 * 3600) * 1000;
}
