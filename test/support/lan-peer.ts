/**
 * The built CLI on a namespace LAN (netns.ts): one process in host i's namespace, on that host's
 * address and the test's group port, with a data dir the test owns. The LAN tests start their
 * peers through these, so that every one is started the same way.
 */
import type { NetnsLan } from './netns.js';
import { BIN, Lines } from './proc.js';

export interface LanCliOptions {
  port: number;
  dataDir: string;
  /** More flags (--join, --profile, ...). */
  args?: string[];
}

/** `peer <command...>` in host i's namespace, on its address; colour off. */
export function lanCli(lan: NetnsLan, i: number, command: string[], o: LanCliOptions): Lines {
  const args = [
    BIN,
    ...command,
    '--interface',
    lan.host(i).address,
    '--port',
    String(o.port),
    '--data-dir',
    o.dataDir,
    ...(o.args ?? []),
  ];
  return new Lines(lan.spawn(i, process.execPath, args, { NO_COLOR: '1' }));
}

/** `peer up --name NAME --log-format json` in host i's namespace (loggedState reads its view). */
export function lanUp(lan: NetnsLan, i: number, name: string, o: LanCliOptions): Lines {
  return lanCli(lan, i, ['up', '--name', name, '--log-format', 'json'], o);
}
