// The key-transparency Merkle math against the RFC 6962/9162 Certificate Transparency test
// vectors (the reference leaves "", 00, 10, 2021, … and their published roots and proofs), plus
// properties: every proof for every size verifies, and any tampering fails.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { sha256Sync } from "../../proto/kt/sha256.ts";
import {
  EMPTY_ROOT,
  MemoryTree,
  consistencyProof,
  inclusionPath,
  leafHash,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from "../../proto/kt/merkle.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

const CT_LEAVES = [
  "",
  "00",
  "10",
  "2021",
  "3031",
  "40414243",
  "5051525354555657",
  "606162636465666768696a6b6c6d6e6f",
].map(unhex);
/** CT_ROOTS[n] = MTH of the first n reference leaves. */
const CT_ROOTS = [
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
/** Published inclusion proofs (leaf index 0-based here). */
const CT_INCLUSION = [
  { index: 0, size: 1, path: [] as string[] },
  {
    index: 0,
    size: 8,
    path: [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  },
  {
    index: 5,
    size: 8,
    path: [
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
  { index: 2, size: 3, path: ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"] },
  {
    index: 1,
    size: 5,
    path: [
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  },
];
/** Published consistency proofs. */
const CT_CONSISTENCY = [
  { first: 1, second: 1, proof: [] as string[] },
  {
    first: 1,
    second: 8,
    proof: [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  },
  {
    first: 6,
    second: 8,
    proof: [
      "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
  {
    first: 2,
    second: 5,
    proof: [
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  },
];

function referenceTree(): MemoryTree {
  const tree = new MemoryTree();
  for (const leaf of CT_LEAVES) tree.append(leaf);
  return tree;
}

/** A copy of `hashes` with one bit of one hash flipped. */
function flipBit(hashes: readonly Uint8Array[], which: number, bit: number): Uint8Array[] {
  return hashes.map((h, i) => {
    if (i !== which) return h;
    const c = h.slice();
    c[bit >> 3] ^= 1 << (bit & 7);
    return c;
  });
}

describe("SHA-256", () => {
  it("matches the FIPS 180-4 examples", () => {
    expect(hex(sha256Sync())).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(hex(sha256Sync(new TextEncoder().encode("abc")))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(hex(sha256Sync(new TextEncoder().encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))).toBe(
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
  });

  it("equals node:crypto for any input split into any parts", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 5 }), (parts) => {
        const whole = Buffer.concat(parts);
        expect(hex(sha256Sync(...parts))).toBe(createHash("sha256").update(whole).digest("hex"));
      }),
      { numRuns: 300 },
    );
  });
});

describe("RFC 9162 Merkle tree (Certificate Transparency test vectors)", () => {
  it("hashes leaves with 0x00 and nodes with 0x01", () => {
    expect(hex(leafHash(new Uint8Array(0)))).toBe(CT_ROOTS[1]);
    const [a, b] = [leafHash(CT_LEAVES[0]), leafHash(CT_LEAVES[1])];
    expect(hex(nodeHash(a, b))).toBe(
      createHash("sha256")
        .update(Buffer.from([1]))
        .update(a)
        .update(b)
        .digest("hex"),
    );
  });

  it("reproduces the published root of every prefix, by the RFC recursion and incrementally", () => {
    expect(hex(EMPTY_ROOT)).toBe(CT_ROOTS[0]);
    const tree = new MemoryTree();
    for (let n = 0; n <= CT_LEAVES.length; n++) {
      expect(hex(rootOf(CT_LEAVES.slice(0, n).map(leafHash))), `MTH of ${n}`).toBe(CT_ROOTS[n]);
      expect(hex(tree.root()), `incremental root of ${n}`).toBe(CT_ROOTS[n]);
      if (n < CT_LEAVES.length) tree.append(CT_LEAVES[n]);
    }
    for (let n = 0; n <= CT_LEAVES.length; n++) expect(hex(tree.root(n)), `historical root of ${n}`).toBe(CT_ROOTS[n]);
  });

  it("produces and verifies the published inclusion proofs", () => {
    const tree = referenceTree();
    for (const v of CT_INCLUSION) {
      const path = inclusionPath(tree, v.index, v.size);
      expect(path.map(hex), `PATH(${v.index}, ${v.size})`).toEqual(v.path);
      expect(
        verifyInclusion(v.index, v.size, leafHash(CT_LEAVES[v.index]), v.path.map(unhex), unhex(CT_ROOTS[v.size])),
      ).toBe(true);
    }
  });

  it("produces and verifies the published consistency proofs", () => {
    const tree = referenceTree();
    for (const v of CT_CONSISTENCY) {
      expect(consistencyProof(tree, v.first, v.second).map(hex), `PROOF(${v.first}, ${v.second})`).toEqual(v.proof);
      expect(
        verifyConsistency(v.first, v.second, unhex(CT_ROOTS[v.first]), unhex(CT_ROOTS[v.second]), v.proof.map(unhex)),
      ).toBe(true);
    }
  });

  it("refuses the published proofs with a wrong leaf, index, size, root or path", () => {
    const v = CT_INCLUSION[2];
    const path = v.path.map(unhex);
    const leaf = leafHash(CT_LEAVES[v.index]);
    const root = unhex(CT_ROOTS[v.size]);
    expect(verifyInclusion(v.index, v.size, leafHash(CT_LEAVES[v.index + 1]), path, root)).toBe(false);
    expect(verifyInclusion(v.index + 1, v.size, leaf, path, root)).toBe(false);
    // (Size 7 would compute the same hashes here: the size is bound by the signed tree head.)
    expect(verifyInclusion(v.index, v.size - 2, leaf, path, root)).toBe(false);
    expect(verifyInclusion(v.index, v.size, leaf, path, unhex(CT_ROOTS[v.size - 1]))).toBe(false);
    expect(verifyInclusion(v.index, v.size, leaf, path.slice(0, -1), root)).toBe(false);
    expect(verifyInclusion(v.index, v.size, leaf, [...path, path[0]], root)).toBe(false);
    expect(verifyInclusion(v.index, v.size, leaf, path, root.subarray(1))).toBe(false);
    expect(verifyInclusion(v.size, v.size, leaf, path, root)).toBe(false);

    const c = CT_CONSISTENCY[2];
    const proof = c.proof.map(unhex);
    const [r1, r2] = [unhex(CT_ROOTS[c.first]), unhex(CT_ROOTS[c.second])];
    expect(verifyConsistency(c.first, c.second, r2, r2, proof)).toBe(false);
    expect(verifyConsistency(c.first, c.second, r1, r1, proof)).toBe(false);
    expect(verifyConsistency(c.first - 1, c.second, unhex(CT_ROOTS[c.first - 1]), r2, proof)).toBe(false);
    expect(verifyConsistency(c.first, c.second, r1, r2, proof.slice(1))).toBe(false);
    expect(verifyConsistency(c.first, c.second, r1, r2, [])).toBe(false);
    expect(verifyConsistency(c.second, c.first, r2, r1, proof)).toBe(false);
    expect(verifyConsistency(c.second, c.second, r2, r1, [])).toBe(false);
  });
});

describe("RFC 9162 Merkle tree properties", () => {
  const leaves = (n: number) => Array.from({ length: n }, (_, i) => Uint8Array.of(i & 0xff, i >> 8, 7));

  it("every leaf's inclusion proof verifies in every tree size, and any flipped bit fails", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 300 })
          .chain((size) => fc.tuple(fc.constant(size), fc.nat(size - 1), fc.nat(), fc.nat(255))),
        ([size, index, which, bit]) => {
          const data = leaves(size);
          const tree = new MemoryTree();
          for (const d of data) tree.append(d);
          const root = tree.root();
          expect(hex(root)).toBe(hex(rootOf(data.map(leafHash))));
          const path = tree.inclusionPath(index);
          const leaf = leafHash(data[index]);
          expect(verifyInclusion(index, size, leaf, path, root)).toBe(true);
          if (path.length > 0)
            expect(verifyInclusion(index, size, leaf, flipBit(path, which % path.length, bit), root)).toBe(false);
          expect(verifyInclusion(index, size, flipBit([leaf], 0, bit)[0], path, root)).toBe(false);
          expect(verifyInclusion(index, size, leaf, path, flipBit([root], 0, bit)[0])).toBe(false);
          if (size > 1) expect(verifyInclusion((index + 1) % size, size, leaf, path, root)).toBe(false);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("every consistency proof between two sizes verifies, and any flipped bit fails", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 300 })
          .chain((second) => fc.tuple(fc.integer({ min: 0, max: second }), fc.constant(second), fc.nat(), fc.nat(255))),
        ([first, second, which, bit]) => {
          const tree = new MemoryTree();
          for (const d of leaves(second)) tree.append(d);
          const [r1, r2] = [tree.root(first), tree.root(second)];
          const proof = consistencyProof(tree, first, second);
          expect(verifyConsistency(first, second, r1, r2, proof)).toBe(true);
          if (proof.length > 0)
            expect(verifyConsistency(first, second, r1, r2, flipBit(proof, which % proof.length, bit))).toBe(false);
          if (first > 0) {
            expect(verifyConsistency(first, second, flipBit([r1], 0, bit)[0], r2, proof)).toBe(false);
            expect(verifyConsistency(first, second, r1, flipBit([r2], 0, bit)[0], proof)).toBe(false);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a log that rewrote an old leaf has no consistency proof from the old head", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 2, max: 100 })
          .chain((second) => fc.tuple(fc.integer({ min: 1, max: second - 1 }), fc.constant(second))),
        fc.nat(),
        ([first, second], pick) => {
          const honest = new MemoryTree();
          const forged = new MemoryTree();
          const changed = pick % first;
          leaves(second).forEach((d, i) => {
            honest.append(d);
            forged.append(i === changed ? Uint8Array.of(0xee, ...d) : d);
          });
          const proof = consistencyProof(forged, first, second);
          expect(verifyConsistency(first, second, honest.root(first), forged.root(second), proof)).toBe(false);
        },
      ),
      { numRuns: 100 },
    );
  });
});
