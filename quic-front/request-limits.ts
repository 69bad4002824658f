// Request limits shared by both QUIC listeners (the lean driver's and @matrixai/quic's): how
// long a request may take to arrive, how much one connection may buffer, the idle timeout.

/** How long a request may take to arrive (and an answer to be taken), and how much one connection may buffer. */
export interface RequestLimits {
  /**
   * A request must arrive completely within this time from stream open, and an answer must be
   * taken by the client within this time from when its turn to be written comes ...
   */
  transferTimeoutMs: number;
  /** ... plus one second per this many frame bytes, so slow links can move large frames. */
  minTransferBytesPerSecond: number;
  /**
   * Payload bytes the in-progress requests of one connection may reserve. A request waits (its
   * bytes held back by QUIC flow control) until its announced length fits; one that announces
   * more than the whole budget is answered BadRequest.
   */
  connectionBufferBytes: number;
  /** A connection that receives nothing for this long is closed (quiche's max_idle_timeout). */
  idleTimeoutMs: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  transferTimeoutMs: 10_000,
  minTransferBytesPerSecond: 256 * 1024,
  connectionBufferBytes: 16 * 1024 * 1024,
  idleTimeoutMs: 120_000,
};

/** The defaults overridden by `limits`; RangeError unless every limit is a positive integer. */
export function requestLimits(limits: Partial<RequestLimits> = {}): RequestLimits {
  const merged = { ...DEFAULT_REQUEST_LIMITS, ...limits };
  for (const [name, value] of Object.entries(merged)) {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return merged;
}
