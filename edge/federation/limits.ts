// Every bound of the federation link, in one place (docs/security.md lists them).
export const FEDERATION_LIMITS = {
  /** Pending relays one peer's outbox holds; a full outbox answers RateLimited, it never drops. */
  outboxMaxMessages: 100_000,
  /** Share of one outbox a single sender may hold (RateLimited beyond, like a recipient queue's share). */
  outboxSenderShare: 0.1,
  /** Pending payload bytes one peer's outbox holds. */
  outboxMaxBytes: 512 * 1024 * 1024,
  /** Relays per bundle (one signed request, stored in order by the peer; one bundle in flight per peer). */
  outboxBatch: 64,
  /** Oldest relays one run looks through for ones not held back by a busy recipient. */
  outboxScanWindow: 512,
  /** Relay bytes per bundle (a single larger relay goes alone; the receiver reads ≤ 4 MiB + 64 KiB). */
  bundleMaxBytes: 2 * 1024 * 1024,
  /** Retry back-off while a peer is down: from 1 s, doubling, at most 5 min, with full jitter. */
  backoffBaseMs: 1_000,
  backoffMaxMs: 300_000,
  /** Relays the peer refused for good (unknown recipient...), kept for inspection, oldest dropped beyond. */
  rejectedKept: 1_000,
  /** Seen signatures one inbox remembers (each for the created window); when full, refused. */
  replayCacheMax: 200_000,
  /** One edge-to-edge request, including the answer. */
  requestTimeoutMs: 15_000,
  /** How long an edge isolate trusts its copy of a peer row (config changes apply within this). */
  peerCacheMs: 5_000,
  /** Identity → home domain entries one isolate caches. */
  ownerCacheMax: 10_000,
  ownerCacheMs: 10 * 60_000,
  /** Largest answer body read from a peer. */
  answerMaxBytes: 2 * 1024 * 1024,
} as const;
