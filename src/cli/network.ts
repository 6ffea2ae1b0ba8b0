/**
 * Choosing and checking the network settings a peer runs with. Everything here fails with one
 * clear sentence that says what to pass instead.
 */
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** IPv4 addresses of this machine's interfaces, by interface name. */
export function localIPv4(): Array<{ iface: string; address: string }> {
  const out: Array<{ iface: string; address: string }> = [];
  for (const [iface, addrs] of Object.entries(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4') out.push({ iface, address: a.address });
  }
  return out;
}

/** The interface of the default route, from the kernel's routing table (Linux). */
export function defaultRouteInterface(): string | undefined {
  let table: string;
  try {
    table = fs.readFileSync('/proc/net/route', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of table.split('\n').slice(1)) {
    const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (destination === '00000000' && mask === '00000000') return iface;
  }
  return undefined;
}

/** Resolves --interface: an IPv4 address of this machine, or the default route's address. */
export function resolveInterface(requested: string | undefined): string {
  const locals = localIPv4();
  const known = locals.map((l) => `${l.address} (${l.iface})`).join(', ') || 'none';
  if (requested) {
    if (net.isIPv4(requested)) {
      if (!locals.some((l) => l.address === requested))
        throw new UsageError(
          `--interface ${requested} is not an address of this machine; use one of: ${known}`,
        );
      return requested;
    }
    // An interface name is accepted too: its first IPv4 address.
    const byName = locals.find((l) => l.iface === requested);
    if (byName) return byName.address;
    throw new UsageError(
      `--interface ${requested} is neither an IPv4 address nor an interface name of this machine; use one of: ${known}`,
    );
  }
  const iface = defaultRouteInterface();
  const address = iface && locals.find((l) => l.iface === iface)?.address;
  if (!address)
    throw new UsageError(
      `no default route to pick an interface from; pass --interface with one of: ${known}`,
    );
  return address;
}

export function checkGroup(group: string): string {
  if (!net.isIPv4(group))
    throw new UsageError(
      `--group ${group} is not an IPv4 address; use a multicast address such as 239.255.77.77`,
    );
  const first = Number(group.split('.')[0]);
  if (first < 224 || first > 239)
    throw new UsageError(
      `--group ${group} is not a multicast address (224.0.0.0 to 239.255.255.255); 239.255.x.x is for local use`,
    );
  return group;
}
