// Throwaway smoke check for tests/support/mls.ts: node tests/support/mls.check.ts
import assert from "node:assert/strict";
import { createMlsMember, decodeMessage } from "./mls.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

const alice = await createMlsMember("alice");
const bob = await createMlsMember("bob");
const groupId = enc("conv-1");
await alice.createGroup(groupId);
assert.equal(alice.epoch(), 0n);

const decoy = await bob.keyPackage(); // an unused extra key package
const kp = await bob.keyPackage();
assert.equal(decodeMessage(kp).wireformat, "mls_key_package");
assert.notDeepEqual(decoy, kp);
const { welcome, commit } = await alice.addMember(kp);
assert.equal(decodeMessage(welcome).wireformat, "mls_welcome");
console.log("commit wireformat:", decodeMessage(commit).wireformat, "bytes:", commit.length, "welcome bytes:", welcome.length, "kp bytes:", kp.length);
assert.equal(alice.epoch(), 1n);

await assert.rejects(alice.joinFromWelcome(welcome), /not for any key package/);
await bob.joinFromWelcome(welcome);
assert.equal(bob.epoch(), 1n);
assert.deepEqual(bob.groupId(), groupId);
await assert.rejects(bob.joinFromWelcome(welcome), /not for any key package/); // key package was one-time

for (let i = 0; i < 3; i++) {
  const c1 = await alice.encrypt(enc(`hello bob ${i}`));
  assert.equal(dec(await bob.decrypt(c1)), `hello bob ${i}`);
  const c2 = await bob.encrypt(enc(`hi alice ${i}`));
  assert.equal(dec(await alice.decrypt(c2)), `hi alice ${i}`);
}

// tampered ciphertext fails, and the untampered copy still decrypts afterwards
const ct = await alice.encrypt(enc("secret"));
const tampered = ct.slice();
tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0x01;
await assert.rejects(bob.decrypt(tampered));
const tampered2 = ct.slice();
tampered2[Math.floor(ct.length / 2)] = (tampered2[Math.floor(ct.length / 2)] ?? 0) ^ 0x80;
await assert.rejects(bob.decrypt(tampered2));
await assert.rejects(bob.decrypt(ct.subarray(0, ct.length - 1)));
assert.equal(dec(await bob.decrypt(ct)), "secret");
// replay of an already-consumed generation fails
await assert.rejects(bob.decrypt(ct));
// own message can't be decrypted by the sender; commit/welcome aren't application messages
await assert.rejects(alice.decrypt(await alice.encrypt(enc("self"))));
await assert.rejects(bob.decrypt(welcome), /expected private message/);
// a non-member cannot decrypt
const eve = await createMlsMember("eve");
await assert.rejects(eve.decrypt(await alice.encrypt(enc("x"))), /not in a group/);
console.log("mls check OK");
