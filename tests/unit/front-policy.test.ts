import { describe, it, expect } from "vitest";
import { TokenBucket, KeyedLimiter } from "../../quic-front/rate-limit.ts";
import { configFromEnv, ConfigError, parseHostPort } from "../../quic-front/config.ts";

describe("token bucket", () => {
  it("allows a burst, then refuses with the wait until the next token", () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.take(0), b.take(0), b.take(0)]).toEqual([0, 0, 0]);
    expect(b.take(0)).toBe(100);
    expect(b.take(100)).toBe(0);
  });

  it("keys buckets separately and stays bounded", () => {
    const l = new KeyedLimiter(1, 1, 2);
    expect(l.take("a", 0)).toBe(0);
    expect(l.take("a", 0)).toBeGreaterThan(0);
    expect(l.take("b", 0)).toBe(0);
    expect(l.take("c", 0)).toBe(0); // evicts "a"
    expect(l.take("a", 0)).toBe(0);
  });
});

describe("front configuration", () => {
  const base = { QPQ_EDGE_URL: "http://127.0.0.1:8787", QPQ_FRONT_SECRET: "s" };

  it("has the documented defaults", () => {
    const c = configFromEnv(base);
    expect([c.host, c.port, c.rpcTimeoutMs, c.drainTimeoutMs]).toEqual(["0.0.0.0", 5001, 30_000, 30_000]);
  });

  it("parses listen addresses and durations", () => {
    expect(parseHostPort("[::1]:5001", "x")).toEqual({ host: "::1", port: 5001 });
    expect(configFromEnv({ ...base, QPQ_RPC_TIMEOUT: "500ms", QPQ_DRAIN_TIMEOUT: "5s" })).toMatchObject({ rpcTimeoutMs: 500, drainTimeoutMs: 5000 });
    expect(() => configFromEnv({ ...base, QPQ_LISTEN: "nonsense" })).toThrow(ConfigError);
    expect(() => configFromEnv({ ...base, QPQ_RPC_TIMEOUT: "soon" })).toThrow(ConfigError);
  });

  it("refuses insecure settings in production mode", () => {
    expect(() => configFromEnv({ ...base, QPQ_PRODUCTION: "1" })).toThrow(/development certificate/);
    expect(() => configFromEnv({ ...base, QPQ_PRODUCTION: "1", QPQ_TLS_CERT: "c", QPQ_TLS_KEY: "k" })).toThrow(/QPQ_FRONT_SECRET/);
    expect(() => configFromEnv({ QPQ_FRONT_SECRET: "s" })).toThrow(/QPQ_EDGE_URL/);
  });
});

describe("front limits configuration", () => {
  it("refuses limits below 1 (a zero rate would refuse everything with no retry hint)", () => {
    const base = { QPQ_EDGE_URL: "http://127.0.0.1:8787", QPQ_FRONT_SECRET: "s" };
    expect(() => configFromEnv({ ...base, QPQ_RPC_PER_SECOND: "0" })).toThrow(/QPQ_RPC_PER_SECOND/);
    expect(() => configFromEnv({ ...base, QPQ_MAX_CONNECTIONS: "0" })).toThrow(/QPQ_MAX_CONNECTIONS/);
  });
});
