/**
 * Runs the doctor's checks in order. Later checks need earlier ones (the round trip needs an
 * interface, the probe needs a key file that parses), so a check that cannot run says 'skip'
 * and names what it waits for, instead of failing twice for one cause.
 */
import type { ProfileName } from '../../p2p/config.js';
import type { ReachMode } from '../../p2p/reach.js';
import type { NetworkSettings } from '../peer.js';
import { keySettings } from '../security.js';
import { parseAddress } from '../../p2p/transport/transport.js';
import {
  checkDataDir,
  checkDatabases,
  checkGroupAddress,
  checkInterfaceChoice,
  checkInterfaces,
  checkKeyFile,
  checkMulticast,
  checkPort,
  checkTtl,
  type CheckResult,
} from './checks.js';
import {
  checkPeersAnswer,
  checkSeedsAnswer,
  observeGroup,
  type DoctorSeed,
  type Observation,
} from './probe.js';
import { checkNetwork, type NetworkVerdict } from './network.js';

export type { CheckResult, CheckStatus } from './checks.js';

export interface DoctorOptions {
  name?: string;
  group: string;
  port: number;
  interface?: string;
  ttl: number;
  dataDir: string;
  profile: ProfileName;
  keyFile?: string;
  /** --open: the group runs open on purpose (no warning that it is open). */
  open?: boolean;
  /** How long to wait for peers to answer, in ms. */
  waitMs: number;
  /** --join / PEER_JOIN, resolved (network.ts doctorSeeds), or the peers the data dir remembers. */
  seeds: readonly DoctorSeed[];
  /** --transport: with unicast, the multicast checks are not run and the seeds are the way in. */
  transport?: ReachMode;
}

export interface DoctorReport {
  ok: boolean;
  counts: Record<CheckResult['status'], number>;
  checks: CheckResult[];
  /** Which case the host is in and the --join line to use; null when the checks it needs could not run. */
  network: NetworkVerdict | null;
}

const skip = (id: string, title: string, needs: string): CheckResult => ({
  id,
  title,
  status: 'skip',
  detail: `not run: needs ${needs}`,
});

export async function runDoctor(
  o: DoctorOptions,
  onCheck: (c: CheckResult) => void = () => {},
): Promise<DoctorReport> {
  const checks: CheckResult[] = [];
  const add = (c: CheckResult) => {
    checks.push(c);
    onCheck(c);
    return c;
  };
  add(checkInterfaces());
  const { check: ifaceCheck, address } = checkInterfaceChoice(o.interface, o.ttl);
  add(ifaceCheck);
  const groupOk = add(checkGroupAddress(o.group)).status !== 'fail';
  add(checkTtl(o.ttl, address));
  const portOk = groupOk
    ? add(await checkPort(o.group, o.port)).status !== 'fail'
    : add(skip('port', 'group port', 'a valid group address'));
  let roundTripOk = false;
  const unicastOnly = o.transport === 'unicast';
  if (unicastOnly) {
    const unused = 'not run: --transport unicast sends and takes no multicast';
    add({ id: 'join', title: 'group join', status: 'skip', detail: unused });
    add({ id: 'round-trip', title: 'loopback round trip', status: 'skip', detail: unused });
  } else if (address && groupOk && portOk) {
    const mc = await checkMulticast(o.group, o.port, address, o.ttl);
    add(mc.join);
    roundTripOk = add(mc.roundTrip).status === 'pass';
  } else {
    const needs = !address ? 'a usable interface' : !groupOk ? 'a valid group address' : 'a free group port';
    add(skip('join', 'group join', needs));
    add(skip('round-trip', 'loopback round trip', needs));
  }
  const keyCheck = add(checkKeyFile(o.keyFile));
  const resolved = o.seeds.filter((s) => s.address !== undefined);
  let observed: Observation | null = null;
  // With a blocked round trip the group is not worth a probe, but the seeds still are.
  if (address && keyCheck.status !== 'fail' && (roundTripOk || resolved.length > 0)) {
    const settings: NetworkSettings = {
      name: o.name ?? 'doctor',
      group: o.group,
      port: o.port,
      interface: address,
      ttl: o.ttl,
      dataDir: o.dataDir,
      profile: o.profile,
      keys: keySettings(o.keyFile),
      openOnPurpose: o.open,
      join: resolved.map((s) => parseAddress(s.address!)),
      ...(o.transport ? { transport: o.transport } : {}),
    };
    observed = await observeGroup(settings, o.waitMs);
    if (roundTripOk) add(checkPeersAnswer(observed, settings));
  }
  if (unicastOnly)
    add({
      id: 'peers',
      title: 'peers answer',
      status: 'skip',
      detail: 'not run: with --transport unicast members are met through the seeds (below)',
    });
  else if (!observed || !roundTripOk)
    add(skip('peers', 'peers answer', !roundTripOk ? 'a working loopback round trip' : 'a valid key file'));
  if (o.seeds.length === 0)
    add({
      id: 'seeds',
      title: 'seeds answer',
      status: 'skip',
      detail: `none given (--join / PEER_JOIN) and none remembered in ${o.dataDir}${unicastOnly ? '' : ': only the group on this subnet was checked'}`,
    });
  else if (keyCheck.status === 'fail' || !address)
    add(skip('seeds', 'seeds answer', !address ? 'a usable interface' : 'a valid key file'));
  else add(checkSeedsAnswer(observed, o.seeds, { port: o.port, keyFile: o.keyFile }));
  let network: NetworkVerdict | null = null;
  if (address && groupOk && portOk && keyCheck.status !== 'fail') {
    const n = checkNetwork({
      group: o.group,
      port: o.port,
      address,
      roundTripOk,
      unicastOnly,
      observed,
      seeds: o.seeds,
    });
    add(n.check);
    network = n.verdict;
  } else
    add(
      skip(
        'network',
        'network',
        !address ? 'a usable interface' : !groupOk || !portOk ? 'the group checks' : 'a valid key file',
      ),
    );
  const dirOk = add(checkDataDir(o.dataDir)).status !== 'fail';
  if (dirOk) for (const c of checkDatabases(o.dataDir, o.name)) add(c);
  else add(skip('database', 'database', 'a usable data dir'));
  const counts = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) counts[c.status]++;
  return { ok: counts.fail === 0, counts, checks, network };
}
