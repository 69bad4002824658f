// UTF-8 text to bytes, with one encoder per process.
const encoder = new TextEncoder();

export function encodeUtf8(text: string): Uint8Array {
  return encoder.encode(text);
}
