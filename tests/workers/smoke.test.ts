import { describe, it, expect } from "vitest";
import { exports } from "cloudflare:workers";

describe("edge smoke", () => {
  it("answers /health", async () => {
    const res = await exports.default.fetch("https://edge/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok" });
  });
});
