// Token buckets. Time is a parameter so the policy is testable without clocks.
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly ratePerMs: number;
  private readonly burst: number;

  constructor(ratePerSecond: number, burst: number, now: number) {
    this.ratePerMs = ratePerSecond / 1000;
    this.burst = burst;
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token; returns 0 when allowed, else the milliseconds until one is available. */
  take(now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.ratePerMs);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.tokens) / this.ratePerMs);
  }
}

/** Buckets keyed by a string (client address), evicting idle ones so the map stays bounded. */
export class KeyedLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly ratePerSecond: number;
  private readonly burst: number;
  private readonly maxKeys: number;

  constructor(ratePerSecond: number, burst: number, maxKeys = 100_000) {
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.maxKeys = maxKeys;
  }

  take(key: string, now: number): number {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      b = new TokenBucket(this.ratePerSecond, this.burst, now);
      this.buckets.set(key, b);
    }
    return b.take(now);
  }
}
