// Response status codes (wire-protocol.md §4). Values are part of the wire contract.
export const Status = {
  Ok: 0,
  BadRequest: 1,
  Unauthorized: 2,
  Forbidden: 3,
  NotFound: 4,
  RateLimited: 5,
  DeadlineExceeded: 8,
  Unavailable: 9,
  Internal: 10,
  UnknownMethod: 11,
} as const;

export type StatusName = keyof typeof Status;
export type StatusCode = (typeof Status)[StatusName];

const names = new Map<number, StatusName>(
  (Object.entries(Status) as [StatusName, StatusCode][]).map(([name, code]) => [code, name]),
);

export function statusName(code: number): string {
  return names.get(code) ?? `Status(${code})`;
}

export function isStatusCode(code: number): code is StatusCode {
  return names.has(code);
}
