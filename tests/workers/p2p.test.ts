// P2P endpoints (800/801) in workerd with real D1: publish/resolve per device, bounded lifetime,
// expired endpoints never resolved (and swept), at most one endpoint per device of an identity.
import { describe, it, expect } from "vitest";
import { drizzle } from "drizzle-orm/d1";
import { Method, Status, pb } from "../../proto/index.ts";
import { assertionFor, bytesOf, ensureAccount, env, hex, ok, randomKey, rpc, textOf } from "./helpers.ts";
import { sweepStorage } from "../../edge/lib/storage-sweep.ts";
import { createLogger } from "../../proto/util/log.ts";
import * as tables from "../../schema/tables.ts";

function publish(caller: Uint8Array | string, address: Uint8Array, ttlSecs = 0) {
  return rpc(Method.PublishEndpoint, pb.PublishEndpointRequest.encode({ address, ttlSecs }).finish(), { caller });
}

async function resolve(caller: Uint8Array, identityKey: Uint8Array) {
  return ok(
    await rpc(Method.ResolveEndpoint, pb.ResolveEndpointRequest.encode({ identityKey }).finish(), { caller }),
    pb.ResolveEndpointResponse,
  );
}

/** An assertion for a second registered device of `key`. */
async function deviceAssertion(key: Uint8Array, deviceId: Uint8Array): Promise<string> {
  await ensureAccount(key);
  await env.DB.prepare(
    "INSERT OR IGNORE INTO devices (identity_key, device_id, name, created_at, last_seen_at) VALUES (?, ?, '', 0, 0)",
  )
    .bind(key, deviceId)
    .run();
  return assertionFor(key, { deviceId });
}

describe("PublishEndpoint / ResolveEndpoint", () => {
  it("publishes per device; resolve answers the newest and lists every live one; empty withdraws", async () => {
    const [alice, bob] = [randomKey(), randomKey()];
    const before = Date.now();
    const published = ok(await publish(alice, bytesOf("udp://198.51.100.7:4433")), pb.PublishEndpointResponse);
    // ttl 0 = the default 300 s.
    expect(published.expiresAtMs).toBeGreaterThanOrEqual(before + 300_000);
    expect(published.expiresAtMs).toBeLessThanOrEqual(Date.now() + 300_000);
    const laptop = await deviceAssertion(alice, bytesOf("laptop"));
    // Published later (and, should both land in one millisecond, expiring later): the newest.
    ok(await publish(laptop, bytesOf("udp://203.0.113.9:9"), 600), pb.PublishEndpointResponse);

    const seen = await resolve(bob, alice);
    expect(textOf(seen.address)).toBe("udp://203.0.113.9:9");
    expect(seen.endpoints.map((e) => textOf(e.deviceId)).sort()).toEqual(["", "laptop"]);

    // Publishing again replaces the device's endpoint; an empty address withdraws it.
    ok(await publish(alice, bytesOf("udp://198.51.100.7:5555"), 900), pb.PublishEndpointResponse);
    expect(textOf((await resolve(bob, alice)).address)).toBe("udp://198.51.100.7:5555");
    expect(ok(await publish(laptop, new Uint8Array(0)), pb.PublishEndpointResponse).expiresAtMs).toBe(0);
    expect((await resolve(bob, alice)).endpoints).toHaveLength(1);

    const nobody = await resolve(bob, randomKey());
    expect(nobody.address.length).toBe(0);
    expect(nobody.endpoints).toEqual([]);
  });

  it("caps the lifetime at a day and refuses oversized addresses or a bad identity key", async () => {
    const alice = randomKey();
    const capped = ok(await publish(alice, bytesOf("x"), 10 * 86400), pb.PublishEndpointResponse);
    expect(capped.expiresAtMs).toBeLessThanOrEqual(Date.now() + 86400_000);
    expect((await publish(alice, new Uint8Array(513))).status).toBe(Status.BadRequest);
    expect((await publish(alice, new Uint8Array(512))).status).toBe(Status.Ok);
    const bad = await rpc(
      Method.ResolveEndpoint,
      pb.ResolveEndpointRequest.encode({ identityKey: new Uint8Array(31) }).finish(),
      { caller: alice },
    );
    expect(bad.status).toBe(Status.BadRequest);
    expect((await rpc(Method.ResolveEndpoint, new Uint8Array(0))).status).toBe(Status.Unauthorized);
  });

  it("never resolves an expired endpoint, and the sweep deletes it", async () => {
    const [alice, bob] = [randomKey(), randomKey()];
    const published = ok(await publish(alice, bytesOf("soon gone"), 1), pb.PublishEndpointResponse);
    expect(textOf((await resolve(bob, alice)).address)).toBe("soon gone");
    // Expire it without waiting: move its expiry into the past.
    await env.DB.prepare("UPDATE p2p_endpoints SET expires_at = ? WHERE identity_key = ?")
      .bind(Date.now() - 1, alice)
      .run();
    const after = await resolve(bob, alice);
    expect(after.address.length).toBe(0);
    expect(after.expiresAtMs).toBe(0);
    expect(after.endpoints).toEqual([]);
    const deps = { db: drizzle(env.DB, { schema: tables }), blobs: env.BLOBS, logger: createLogger("error") };
    expect((await sweepStorage(deps, published.expiresAtMs, 100)).endpoints).toBeGreaterThanOrEqual(1);
    const left = await env.DB.prepare("SELECT COUNT(*) AS n FROM p2p_endpoints WHERE identity_key = ?")
      .bind(alice)
      .first<{ n: number }>();
    expect(left?.n).toBe(0);
  });

  it("holds an identity to one live endpoint per device, at most 5", async () => {
    const [alice, bob] = [randomKey(), randomKey()];
    await ensureAccount(alice);
    // Five live endpoints of other (e.g. since revoked) devices.
    for (let i = 0; i < 5; i++) {
      await env.DB.prepare(
        "INSERT INTO p2p_endpoints (identity_key, device_id, address, published_at, expires_at) VALUES (?, ?, x'01', ?, ?)",
      )
        .bind(alice, bytesOf(`old-${i}`), Date.now() - 60_000, Date.now() + 3_600_000)
        .run();
    }
    const refused = await publish(alice, bytesOf("sixth"));
    expect(refused.status).toBe(Status.Forbidden);
    await env.DB.prepare("UPDATE p2p_endpoints SET expires_at = ? WHERE identity_key = ? AND device_id = ?")
      .bind(Date.now() - 1, alice, bytesOf("old-0"))
      .run();
    ok(await publish(alice, bytesOf("sixth")), pb.PublishEndpointResponse);
    const seen = await resolve(bob, alice);
    expect(hex(seen.address)).toBe(hex(bytesOf("sixth")));
    expect(seen.endpoints).toHaveLength(5);
  });
});
