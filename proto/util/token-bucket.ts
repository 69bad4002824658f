// Token buckets: per connection and per client address at the front, per sender in a recipient
// queue (edge), per plugin for its log lines. Pure: time is a parameter, so the policies are
// tested without clocks.

/** A refill rate: `tokens` every `periodMs` (kept as the pair, so whole-number rates stay exact). */
export interface Rate {
  tokens: number;
  periodMs: number;
}

export class TokenBucket {
  private tokens: number;
  private at: number;
  private readonly rate: Rate;
  private readonly burst: number;

  /** Full at `now`: `burst` tokens, refilled at `rate` (a number: tokens per second). */
  constructor(rate: number | Rate, burst: number, now: number) {
    this.rate = typeof rate === "number" ? { tokens: rate, periodMs: 1000 } : rate;
    this.burst = burst;
    this.tokens = burst;
    this.at = now;
  }

  level(now: number): number {
    const refill = (Math.max(0, now - this.at) * this.rate.tokens) / this.rate.periodMs;
    return Math.min(this.burst, this.tokens + refill);
  }

  /** Milliseconds until there is a whole token (0: there is one now). */
  waitMs(now: number): number {
    const missing = 1 - this.level(now);
    return missing <= 0 ? 0 : Math.ceil((missing * this.rate.periodMs) / this.rate.tokens);
  }

  /** Takes one token: 0 when there was one, else the milliseconds until one is available (nothing taken). */
  take(now: number): number {
    const wait = this.waitMs(now);
    if (wait === 0) this.set(this.level(now) - 1, now);
    return wait;
  }

  /** Gives back a token spent on work that was then abandoned. */
  refund(now: number): void {
    this.set(Math.min(this.burst, this.level(now) + 1), now);
  }

  private set(tokens: number, now: number): void {
    this.tokens = tokens;
    this.at = Math.max(this.at, now);
  }
}

export interface BucketConfig {
  /** Bucket size: how many calls may come at once. */
  burst: number;
  /** Refill rate. */
  perMinute: number;
  /** Keys tracked at once. */
  maxKeys: number;
}

/**
 * Buckets keyed by a string, with a bounded number of keys. A key not tracked has a full bucket,
 * so dropping the least recently used key when the map is full can only forgive a caller, never
 * block one.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly rate: Rate;
  private readonly burst: number;
  private readonly maxKeys: number;

  constructor(config: { burst: number; maxKeys: number; rate: Rate } | BucketConfig) {
    this.rate = "rate" in config ? config.rate : { tokens: config.perMinute, periodMs: 60_000 };
    this.burst = config.burst;
    this.maxKeys = config.maxKeys;
  }

  /** Milliseconds until `key` has a whole token (0: it has one now). */
  waitMs(key: string, now: number): number {
    return this.buckets.get(key)?.waitMs(now) ?? 0;
  }

  /**
   * Takes one token of `key`: 0 when it had one, else the milliseconds until it has (nothing
   * taken). Either way `key` becomes the most recently active.
   */
  take(key: string, now: number): number {
    const bucket = this.buckets.get(key) ?? new TokenBucket(this.rate, this.burst, now);
    this.touch(key, bucket);
    return bucket.take(now);
  }

  /** Gives back a token spent on work that was then abandoned. */
  refund(key: string, now: number): void {
    const bucket = this.buckets.get(key);
    if (!bucket) return;
    bucket.refund(now);
    this.touch(key, bucket);
  }

  get size(): number {
    return this.buckets.size;
  }

  private touch(key: string, bucket: TokenBucket): void {
    this.buckets.delete(key); // re-insert: Map order is least recently used first
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
  }
}

/** TokenBuckets with a per-second rate, e.g. per client address (at most `maxKeys` addresses). */
export class KeyedLimiter extends TokenBuckets {
  constructor(perSecond: number, burst: number, maxKeys = 100_000) {
    super({ burst, maxKeys, rate: { tokens: perSecond, periodMs: 1000 } });
  }
}
