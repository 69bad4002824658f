// Nothing is lost across a restart: messages, KeyPackages and sessions live in Durable Objects
// and D1 persisted under the data directory.
import { describe, it, expect } from "vitest";
import { startTestSystem, randomIdentity, uniqueName } from "../support/system.ts";

describe("durability", () => {
  it("fetches after a restart what was enqueued before it", async () => {
    const sys = await startTestSystem();
    try {
      const name = uniqueName("carol");
      const key = randomIdentity();
      let carol = await sys.connect();
      expect(await carol.register(name, "pw-carol", key)).toBe(true);
      const token = await carol.login(name, "pw-carol", key);
      const payloads = ["one", "two", "three"].map((s) => new TextEncoder().encode(s));
      const seqs: number[] = [];
      for (const payload of payloads) seqs.push((await carol.enqueue({ recipientKey: key, payload })).seq);
      await carol.uploadKeyPackage(new TextEncoder().encode("kp-1"));

      await sys.restart();

      carol = await sys.connect();
      await carol.resume(token);
      const got = await carol.fetch();
      expect(got.map((e) => e.seq)).toEqual(seqs);
      expect(got.map((e) => new TextDecoder().decode(e.data))).toEqual(["one", "two", "three"]);
      expect(new TextDecoder().decode(await carol.fetchKeyPackage(key))).toBe("kp-1");
      // seq keeps increasing after the restart
      const next = await carol.enqueue({ recipientKey: key, payload: new Uint8Array([4]) });
      expect(next.seq).toBeGreaterThan(seqs[2]);
    } finally {
      await sys.stop();
    }
  });
});
