// Client calls about identities homed elsewhere, answered by their home region (902-904).
import { Method, badRequest, decode, notFound, pb, unavailable } from "../../proto/index.ts";
import type { EdgeDeps } from "../deps.ts";
import type { FederationDeps } from "./config.ts";
import { findPeer, type Peer } from "./peers.ts";
import { proxyCall } from "./client.ts";
import { homeOf, learnHome } from "./ownership.ts";

/** "name@domain" → its parts; a name without '@' is local (null). */
export function splitAddress(username: string): { name: string; domain: string } | null {
  const at = username.lastIndexOf("@");
  if (at < 0) return null;
  const name = username.slice(0, at);
  const domain = username.slice(at + 1).toLowerCase();
  if (!name || !domain) throw badRequest("a remote user is addressed as name@domain");
  return { name, domain };
}

async function peerFor(deps: EdgeDeps, domain: string): Promise<{ fed: FederationDeps; peer: Peer }> {
  const fed = deps.federation;
  if (!fed) throw notFound(`federation is off here: no user @${domain}`);
  const peer = await findPeer(deps.db, domain);
  if (!peer) throw notFound(`${domain} is not a federation peer of this region`);
  return { fed, peer };
}

/**
 * ResolveUser of name@domain: the home region's answer (its KT proof and signed tree head, and
 * its log key), after recording that the domain owns the returned identity key.
 */
export async function resolveRemote(deps: EdgeDeps, name: string, domain: string) {
  const { fed, peer } = await peerFor(deps, domain);
  const res = await proxyCall(
    fed,
    peer,
    Method.ProxyResolveUser,
    pb.ProxyResolveUserRequest,
    { username: name },
    pb.ProxyResolveUserResponse,
  );
  const resolution = decode(pb.ResolveUserResponse, res.resolution ?? new Uint8Array(0), "home region answer");
  const homeKtPublicKey = res.ktPublicKey ?? new Uint8Array(0);
  if (resolution.identityKey.length !== 32 || homeKtPublicKey.length !== 32) {
    throw unavailable(`home region ${domain} gave a malformed answer`);
  }
  if ((await learnHome(deps.db, resolution.identityKey, domain)) === "conflict") {
    throw unavailable(`home region ${domain} answered an identity key that belongs to another region`);
  }
  return { ...resolution, homeKtPublicKey };
}

/** The peer an identity not registered here is homed on, or null. */
async function homePeer(deps: EdgeDeps, identityKey: Uint8Array) {
  if (!deps.federation) return null;
  const domain = await homeOf(deps.db, identityKey);
  if (!domain) return null;
  return peerFor(deps, domain);
}

/** FetchKeyPackage for a remote identity (null: not a known remote identity). */
export async function fetchKeyPackageRemote(deps: EdgeDeps, identityKey: Uint8Array) {
  const home = await homePeer(deps, identityKey);
  if (!home) return null;
  const res = await proxyCall(
    home.fed,
    home.peer,
    Method.ProxyFetchKeyPackage,
    pb.ProxyFetchKeyPackageRequest,
    { identityKey },
    pb.ProxyFetchKeyPackageResponse,
  );
  return { package: res.package, lastResort: res.lastResort };
}

/** FetchHybridKey for a remote identity (null: not a known remote identity). */
export async function fetchHybridKeyRemote(deps: EdgeDeps, identityKey: Uint8Array): Promise<Uint8Array | null> {
  const home = await homePeer(deps, identityKey);
  if (!home) return null;
  const res = await proxyCall(
    home.fed,
    home.peer,
    Method.ProxyFetchHybridKey,
    pb.ProxyFetchHybridKeyRequest,
    { identityKey },
    pb.ProxyFetchHybridKeyResponse,
  );
  return res.hybridPublicKey ?? new Uint8Array(0);
}
