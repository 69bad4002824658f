// The pure federation pieces: RFC 9421 signing and verification of edge-to-edge requests, and
// the local peers file.
import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  SignatureRefusal,
  checkCreated,
  checkDigest,
  contentDigest,
  importPeerKey,
  parseSignature,
  replayKey,
  signRequest,
  signatureBase,
  verifySignature,
} from "../../edge/federation/signature.ts";
import { readPeers } from "../../local/federation.ts";
import { peerTarget } from "../../edge/federation/peer-url.ts";

async function keys() {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as unknown as {
    privateKey: Awaited<ReturnType<typeof crypto.subtle.importKey>>;
    publicKey: Awaited<ReturnType<typeof crypto.subtle.importKey>>;
  };
  return {
    privateKey: pair.privateKey,
    publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)),
  };
}

const body = new TextEncoder().encode("relay body");
const now = 1_800_000_000;

type Headers = Partial<Record<"content-digest" | "signature-input" | "signature", string>>;

async function verify(
  headers: Headers,
  publicKey: Uint8Array,
  req: { method?: string; path?: string; body?: Uint8Array; nowSecs?: number } = {},
) {
  const parsed = parseSignature(headers["signature-input"], headers.signature);
  checkCreated(parsed.created, req.nowSecs ?? now);
  const digest = await checkDigest(headers["content-digest"], req.body ?? body);
  await verifySignature(
    parsed,
    { method: req.method ?? "POST", path: req.path ?? "/federation/rpc/900", digest },
    await importPeerKey(publicKey),
  );
  return parsed;
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "accepted";
  } catch (err) {
    if (err instanceof SignatureRefusal) return err.reason;
    throw err;
  }
}

describe("federation request signatures", () => {
  it("signs in the one accepted RFC 9421 form and verifies", async () => {
    const k = await keys();
    const h = await signRequest({
      method: "POST",
      path: "/federation/rpc/900",
      body,
      keyId: "a.example",
      privateKey: k.privateKey,
      created: now,
    });
    expect(h["content-digest"]).toBe(await contentDigest(body));
    expect(h["content-digest"]).toMatch(/^sha-256=:[A-Za-z0-9+/]{43}=:$/);
    expect(h["signature-input"]).toMatch(
      /^sig1=\("@method" "@path" "content-digest"\);created=1800000000;nonce="[A-Za-z0-9_-]{22}";keyid="a\.example";alg="ed25519"$/,
    );
    const parsed = await verify(h, k.publicKey);
    expect(parsed.keyId).toBe("a.example");
    // The base is RFC 9421 §2.5's: one line per component, then the parameters, no trailing newline.
    expect(new TextDecoder().decode(signatureBase("post", "/p", "sha-256=:x:", "(…)"))).toBe(
      '"@method": POST\n"@path": /p\n"content-digest": sha-256=:x:\n"@signature-params": (…)',
    );
  });

  it("gives two identical requests two signatures (a nonce), so a retry is not a replay", async () => {
    const k = await keys();
    const sign = () =>
      signRequest({ method: "POST", path: "/x", body, keyId: "a.example", privateKey: k.privateKey, created: now });
    const [one, two] = [await sign(), await sign()];
    expect(one.signature).not.toBe(two.signature);
    const key = async (h: Headers) =>
      Buffer.from(await replayKey(parseSignature(h["signature-input"], h.signature))).toString("hex");
    expect(await key(one)).not.toBe(await key(two));
  });

  it("refuses missing, malformed, tampered, stale, future and foreign-key signatures", async () => {
    const k = await keys();
    const other = await keys();
    const h = await signRequest({
      method: "POST",
      path: "/federation/rpc/900",
      body,
      keyId: "a.example",
      privateKey: k.privateKey,
      created: now,
    });
    expect(await reason(verify({ ...h, signature: "" }, k.publicKey))).toBe("unsigned");
    expect(await reason(verify({ ...h, "signature-input": `${h["signature-input"]};expires=1` }, k.publicKey))).toBe(
      "malformed",
    );
    expect(
      await reason(verify({ ...h, "signature-input": h["signature-input"].replace('"@path" ', "") }, k.publicKey)),
    ).toBe("malformed");
    expect(await reason(verify(h, k.publicKey, { body: new TextEncoder().encode("other body") }))).toBe(
      "digest-mismatch",
    );
    expect(await reason(verify(h, k.publicKey, { path: "/federation/rpc/904" }))).toBe("bad-signature");
    expect(await reason(verify(h, k.publicKey, { method: "PUT" }))).toBe("bad-signature");
    expect(await reason(verify(h, other.publicKey))).toBe("bad-signature");
    expect(
      await reason(
        verify({ ...h, "signature-input": h["signature-input"].replace("a.example", "b.example") }, k.publicKey),
      ),
    ).toBe("bad-signature");
    expect(await reason(verify(h, k.publicKey, { nowSecs: now + 301 }))).toBe("stale");
    expect(await reason(verify(h, k.publicKey, { nowSecs: now - 31 }))).toBe("future");
    expect(await reason(verify(h, k.publicKey, { nowSecs: now + 299 }))).toBe("accepted");
  });
});

describe("the local peers file", () => {
  const dir = mkdtempSync(join(tmpdir(), "qpq-peers-"));
  const file = (content: unknown) => {
    const f = join(dir, `${crypto.randomUUID()}.json`);
    writeFileSync(f, typeof content === "string" ? content : JSON.stringify(content));
    return f;
  };
  const key = Buffer.alloc(32, 1).toString("base64url");

  it("reads domain, URL and base64url public key, domains lower-cased", () => {
    expect(readPeers(file([{ domain: "B.Example", url: "http://127.0.0.1:8788", publicKey: key }]))).toEqual([
      { domain: "b.example", url: "http://127.0.0.1:8788", publicKey: key },
    ]);
  });

  it("names the entry and the field that is wrong", () => {
    expect(() => readPeers(file("not json"))).toThrow(/JSON|Unexpected/);
    expect(() => readPeers(file({}))).toThrow(/array/);
    expect(() => readPeers(file([{ domain: "bad domain", url: "http://x", publicKey: key }]))).toThrow(/\[0\]: domain/);
    expect(() => readPeers(file([{ domain: "b.example", url: "ftp://x", publicKey: key }]))).toThrow(/\[0\]: url/);
    expect(() => readPeers(file([{ domain: "b.example", url: "http://x", publicKey: "short" }]))).toThrow(
      /\[0\]: publicKey/,
    );
  });
});

describe("peer URLs", () => {
  it("signs the path under the peer's base URL; plain http only to this machine", () => {
    expect(peerTarget({ url: "https://edge.example/base/" }, 900).pathname).toBe("/base/federation/rpc/900");
    expect(peerTarget({ url: "http://127.0.0.1:8788" }, "relay-bundle").href).toBe(
      "http://127.0.0.1:8788/federation/relay-bundle",
    );
    expect(peerTarget({ url: "http://b.localhost:8788" }, 905).host).toBe("b.localhost:8788");
    expect(() => peerTarget({ url: "http://edge.example" }, 900)).toThrow(/https/);
  });
});
