/** How many holders' acks an append waits for (`--acks`), decided by the command, not the protocol. */

export type AckPolicy = { kind: 'all' } | { kind: 'majority' } | { kind: 'count'; n: number };

export function parseAckPolicy(s: string): AckPolicy | null {
  if (s === 'all' || s === 'majority') return { kind: s };
  if (/^[1-9][0-9]{0,5}$/.test(s)) return { kind: 'count', n: Number(s) };
  return null;
}

/** Whether `acked` holders satisfy the policy, given every holder known (acked or not). */
export function acksSatisfied(policy: AckPolicy, acked: number, holders: number): boolean {
  if (acked === 0) return false;
  switch (policy.kind) {
    case 'all':
      return acked >= holders;
    case 'majority':
      return acked * 2 > holders;
    case 'count':
      return acked >= policy.n;
  }
}
