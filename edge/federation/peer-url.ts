// Where a request to a peer goes. Pure, shared by the edge and its tests.

/** The URL (and so the @path signed) of one method of a peer, or of another federation path. */
export function peerTarget(peer: { url: string }, target: number | "relay-bundle"): URL {
  const path = typeof target === "number" ? `rpc/${target}` : target;
  const url = new URL(`${peer.url.replace(/\/+$/, "")}/federation/${path}`);
  // Answers are authenticated by TLS only: plain http is for peers on this machine.
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopback(url.hostname))) {
    throw new Error(`peer URL ${peer.url} must be https:// (http:// only for 127.0.0.1, ::1 or *.localhost)`);
  }
  return url;
}

function isLoopback(host: string): boolean {
  return host === "127.0.0.1" || host === "[::1]" || host === "localhost" || host.endsWith(".localhost");
}
