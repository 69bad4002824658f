import { describe, it, expect } from "vitest";
import { TokenBucket, KeyedLimiter } from "../../proto/util/token-bucket.ts";
import { configFromEnv, parseHostPort } from "../../quic-front/config.ts";
import { ConfigError } from "../../proto/util/config-error.ts";
import { addressKey } from "../../proto/util/client-address.ts";
import { FetchWaits, Waiter } from "../../quic-front/fetch-wait.ts";
import { closeReason } from "../../quic-front/ws-listener.ts";
import { ManualClock } from "./support/manual-clock.ts";

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
    expect(c.authPerMinute).toBe(300);
  });

  it("parses listen addresses and durations", () => {
    expect(parseHostPort("[::1]:5001", "x")).toEqual({ host: "::1", port: 5001 });
    expect(configFromEnv({ ...base, QPQ_RPC_TIMEOUT: "500ms", QPQ_DRAIN_TIMEOUT: "5s" })).toMatchObject({
      rpcTimeoutMs: 500,
      drainTimeoutMs: 5000,
    });
    expect(() => configFromEnv({ ...base, QPQ_LISTEN: "nonsense" })).toThrow(ConfigError);
    expect(() => configFromEnv({ ...base, QPQ_RPC_TIMEOUT: "soon" })).toThrow(ConfigError);
  });

  it("refuses insecure settings in production mode", () => {
    expect(() => configFromEnv({ ...base, QPQ_PRODUCTION: "1" })).toThrow(/development certificate/);
    expect(() => configFromEnv({ ...base, QPQ_PRODUCTION: "1", QPQ_TLS_CERT: "c", QPQ_TLS_KEY: "k" })).toThrow(
      /QPQ_FRONT_SECRET/,
    );
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

describe("front limits for connections and FetchWait", () => {
  const base = { QPQ_EDGE_URL: "http://127.0.0.1:8787", QPQ_FRONT_SECRET: "s" };

  it("has the documented defaults", () => {
    expect(configFromEnv(base)).toMatchObject({
      maxConnectionsPerAddress: 64,
      authTimeoutMs: 30_000,
      fetchWaitPerConnection: 4,
      fetchWaitPerIdentity: 16,
    });
  });

  it("reads them from the environment and refuses values below 1", () => {
    expect(
      configFromEnv({
        ...base,
        QPQ_MAX_CONNECTIONS_PER_ADDRESS: "8",
        QPQ_AUTH_TIMEOUT: "10s",
        QPQ_FETCH_WAIT_PER_CONNECTION: "2",
        QPQ_FETCH_WAIT_PER_IDENTITY: "5",
      }),
    ).toMatchObject({
      maxConnectionsPerAddress: 8,
      authTimeoutMs: 10_000,
      fetchWaitPerConnection: 2,
      fetchWaitPerIdentity: 5,
    });
    expect(() => configFromEnv({ ...base, QPQ_MAX_CONNECTIONS_PER_ADDRESS: "0" })).toThrow(
      /QPQ_MAX_CONNECTIONS_PER_ADDRESS/,
    );
    expect(() => configFromEnv({ ...base, QPQ_AUTH_TIMEOUT: "0" })).toThrow(/QPQ_AUTH_TIMEOUT/);
    expect(() => configFromEnv({ ...base, QPQ_FETCH_WAIT_PER_CONNECTION: "0" })).toThrow(
      /QPQ_FETCH_WAIT_PER_CONNECTION/,
    );
    expect(() => configFromEnv({ ...base, QPQ_FETCH_WAIT_PER_IDENTITY: "-1" })).toThrow(/QPQ_FETCH_WAIT_PER_IDENTITY/);
  });
});

describe("per-address limit keys", () => {
  it("strips the port, keeps IPv4 hosts whole and maps IPv4-mapped IPv6 to IPv4", () => {
    expect(addressKey("203.0.113.5:5000")).toBe("203.0.113.5");
    expect(addressKey("[::ffff:203.0.113.5]:5000")).toBe("203.0.113.5");
    expect(addressKey("::ffff:203.0.113.5:5000")).toBe("203.0.113.5");
  });

  it("groups IPv6 clients by /64 whatever the spelling", () => {
    const key = "2001:db8:0:1::/64";
    expect(addressKey("[2001:db8:0:1::1]:1")).toBe(key);
    expect(addressKey("[2001:0DB8:0000:0001:ffff:0:0:1]:2")).toBe(key);
    expect(addressKey("[2001:db8::1:0:0:0:5]:3")).toBe(key);
    expect(addressKey("[fe80::1%eth0]:4")).toBe("fe80:0:0:0::/64");
    expect(addressKey("[64:ff9b::192.0.2.1]:5")).toBe("64:ff9b:0:0::/64");
    expect(addressKey("[::1]:6")).toBe("0:0:0:0::/64");
    expect(addressKey("[2001:db8:0:2::1]:1")).not.toBe(key);
  });

  it("keeps an unparseable host as it is rather than failing", () => {
    expect(addressKey("[1::2::3]:1")).toBe("1::2::3");
    expect(addressKey("unknown:0")).toBe("unknown");
  });
});

describe("FetchWait registry", () => {
  const clock = new ManualClock(0);

  it("latches a wake-up that arrives before the wait starts, so it is not lost", async () => {
    const waits = new FetchWaits({ perConnection: 4, perIdentity: 4 });
    const w = waits.add("c1", "id", "aa") as Waiter;
    waits.notify("id", "aa");
    expect(await w.next(clock, 1000)).toBe("woken");
  });

  it("wakes only the waiters of the event's identity and channel, or all of an identity's", async () => {
    const waits = new FetchWaits({ perConnection: 4, perIdentity: 4 });
    const a = waits.add("c1", "id", "aa") as Waiter;
    const b = waits.add("c1", "id", "bb") as Waiter;
    const other = waits.add("c2", "id2", "aa") as Waiter;
    const ends = [a.next(clock, 1000), b.next(clock, 1000), other.next(clock, 1000)];
    waits.notify("id", "aa");
    expect(await ends[0]).toBe("woken");
    waits.notify("id", undefined);
    expect(await ends[1]).toBe("woken");
    clock.advance(1000);
    expect(await ends[2]).toBe("timeout");
  });

  it("caps per connection, then per identity, and frees a slot on remove", () => {
    const waits = new FetchWaits({ perConnection: 1, perIdentity: 2 });
    const first = waits.add("c1", "id", "") as Waiter;
    expect(waits.add("c1", "id", "")).toEqual({ refused: "connection", limit: 1 });
    expect(waits.add("c2", "id", "")).toBeInstanceOf(Waiter);
    expect(waits.add("c3", "id", "")).toEqual({ refused: "identity", limit: 2 });
    waits.remove(first);
    waits.remove(first);
    expect(waits.size).toBe(1);
    expect(waits.add("c1", "id", "")).toBeInstanceOf(Waiter);
  });

  it("cancels a connection's waits, or all of them", async () => {
    const waits = new FetchWaits({ perConnection: 4, perIdentity: 4 });
    const a = waits.add("c1", "id", "") as Waiter;
    const b = waits.add("c2", "id", "") as Waiter;
    const ends = [a.next(clock, 1000), b.next(clock, 1000)];
    waits.cancelConnection("c1");
    expect(await ends[0]).toBe("cancelled");
    waits.cancelAll();
    expect(await ends[1]).toBe("cancelled");
    expect(await b.next(clock, 1000)).toBe("cancelled");
  });
});

describe("WebSocket close reasons", () => {
  it("fit in 123 bytes of UTF-8 without splitting a character", () => {
    expect(closeReason("short")).toBe("short");
    const cut = closeReason("é".repeat(100));
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(123);
    expect(cut).toBe("é".repeat(61));
  });
});

describe("front limits for request transfer", () => {
  const base = { QPQ_EDGE_URL: "http://127.0.0.1:8787", QPQ_FRONT_SECRET: "s" };

  it("has the documented defaults and reads the environment", () => {
    expect(configFromEnv(base)).toMatchObject({
      transferTimeoutMs: 10_000,
      minTransferBytesPerSecond: 262_144,
      connectionBufferBytes: 16_777_216,
    });
    expect(
      configFromEnv({
        ...base,
        QPQ_TRANSFER_TIMEOUT: "3s",
        QPQ_MIN_TRANSFER_RATE: "1000",
        QPQ_CONNECTION_BUFFER_BYTES: "8388608",
      }),
    ).toMatchObject({ transferTimeoutMs: 3000, minTransferBytesPerSecond: 1000, connectionBufferBytes: 8_388_608 });
  });

  it("refuses a connection buffer smaller than one frame and a zero transfer rate", () => {
    expect(() => configFromEnv({ ...base, QPQ_CONNECTION_BUFFER_BYTES: "1000" })).toThrow(/one frame/);
    expect(() => configFromEnv({ ...base, QPQ_MIN_TRANSFER_RATE: "0" })).toThrow(/QPQ_MIN_TRANSFER_RATE/);
  });
});
