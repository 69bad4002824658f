// Per-key token buckets with a bounded number of keys. Pure: time is a parameter, so it is tested
// without clocks. A key not tracked has a full bucket, so dropping the least recently used key
// when the map is full can only forgive a sender, never block one.

export interface BucketConfig {
  /** Bucket size: how many calls may come at once. */
  burst: number;
  /** Refill rate. */
  perMinute: number;
  /** Keys tracked at once. */
  maxKeys: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly config: BucketConfig;
  constructor(config: BucketConfig) {
    this.config = config;
  }

  private level(key: string, now: number): number {
    const b = this.buckets.get(key);
    if (!b) return this.config.burst;
    const refill = (Math.max(0, now - b.at) * this.config.perMinute) / 60_000;
    return Math.min(this.config.burst, b.tokens + refill);
  }

  /** Milliseconds until `key` has a whole token (0: it has one now). */
  waitMs(key: string, now: number): number {
    const missing = 1 - this.level(key, now);
    return missing <= 0 ? 0 : Math.ceil((missing * 60_000) / this.config.perMinute);
  }

  /** Spends one token (callers check waitMs first); the level may not go below zero. */
  take(key: string, now: number): void {
    this.set(key, Math.max(0, this.level(key, now) - 1), now);
  }

  /** Gives back a token spent on work that was then abandoned. */
  refund(key: string, now: number): void {
    if (this.buckets.has(key)) this.set(key, Math.min(this.config.burst, this.level(key, now) + 1), now);
  }

  get size(): number {
    return this.buckets.size;
  }

  private set(key: string, tokens: number, now: number): void {
    this.buckets.delete(key); // re-insert: Map order is least recently used first
    this.buckets.set(key, { tokens, at: now });
    if (this.buckets.size > this.config.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
  }
}
