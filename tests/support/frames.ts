// Hand-built request headers for tests that announce lengths the encoder would refuse.
export function requestHeader(methodId: number, requestId: number, payloadLength: number): Uint8Array {
  const h = new Uint8Array(10);
  const v = new DataView(h.buffer);
  v.setUint16(0, methodId);
  v.setUint32(2, requestId);
  v.setUint32(6, payloadLength);
  return h;
}
