import { randomBytes } from 'node:crypto';
import { Flags } from '@oclif/core';
import chalk from 'chalk';
import { EXIT_GROUP, PeerCommand } from '../../cli/base.js';
import { networkFlags } from '../../cli/flags.js';
import { networkSettings } from '../../cli/peer.js';
import { UsageError } from '../../cli/network.js';
import { jsonMs, table } from '../../cli/output.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { Progress } from '../../cli/progress.js';
import { KvClient, policyFlag } from '../../cli/kv.js';
import { KV_VALUE_BYTES_MAX, encodeOp, foldLww, type KvOp, type KvVersion } from '../../p2p/kv/index.js';
import type { Entry } from '../../p2p/replication/index.js';

export const BENCH_CLIENTS_MAX = 64;
/** How often a holder whose dump still differs is dumped again while the settle time lasts. */
const REDUMP_INTERVAL_MS = 250;

type OpKind = 'get' | 'put' | 'delete';
const KINDS: OpKind[] = ['get', 'put', 'delete'];

export interface LatencyRow {
  count: number;
  ok: number;
  failed: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface HolderCheck {
  name: string;
  ok: boolean;
  keys: number;
  differences: string[];
}

export interface BenchResult {
  ok: boolean;
  clients: number;
  opsPerClient: number;
  mix: string;
  keys: number;
  acks: string;
  read: string;
  elapsedMs: number;
  opsPerSec: number;
  latency: Record<OpKind | 'all', LatencyRow>;
  writes: number;
  /** Writes no holder had confirmed when the run ended (their outcome is unknown). */
  unconfirmed: string[];
  /** Time from the last operation until every holder advertised the same log. */
  convergedMs: number | null;
  holders: HolderCheck[];
  problems: string[];
}

export default class KvBench extends PeerCommand {
  static override summary = 'Hammer the kv store with concurrent clients, then check every holder.';
  static override description = `A load and consistency test of the replicated store: --clients clients (each its own peer, so its own writer id) run --ops random operations each on --keys shared keys (conflicts on purpose), in the --mix proportions of get:put:delete. Prints throughput and latency percentiles per operation (a write's latency: until --acks holders confirmed; a read's: until --read holders answered). Then waits until every write was confirmed and every holder the group knows holds the same log (up to --settle ms), dumps every holder and compares its table with the expected one: last writer wins, by (Lamport time, writer id), over every write made. Prints SUCCESS, or FAILURE with each difference, and exits ${EXIT_GROUP}. Keys are named after the run, so earlier data does not interfere.`;
  static override examples = [
    '<%= config.bin %> kv bench --interface 127.0.0.1',
    '<%= config.bin %> kv bench --clients 8 --ops 500 --mix 50:40:10 --acks majority --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    clients: Flags.integer({ summary: 'Concurrent clients.', default: 4, min: 1, max: BENCH_CLIENTS_MAX }),
    ops: Flags.integer({ summary: 'Operations per client.', default: 100, min: 1, max: 1_000_000 }),
    mix: Flags.string({ summary: 'Proportions of get:put:delete.', default: '50:40:10' }),
    keys: Flags.integer({ summary: 'Distinct keys the clients share.', default: 16, min: 1, max: 100_000 }),
    'value-bytes': Flags.integer({
      summary:
        'Bytes of each value written (up to 1 MiB; larger than a datagram, they go as reliable messages).',
      default: 16,
      min: 1,
      max: KV_VALUE_BYTES_MAX,
    }),
    acks: Flags.string({
      summary: 'Holders that must confirm each write: all, majority, or a number.',
      default: 'majority',
    }),
    read: Flags.string({
      summary: 'Holders that must answer each read: all, majority, or a number.',
      default: 'majority',
    }),
    timeout: Flags.integer({ summary: 'How long one operation waits, in ms.', default: 5_000, min: 1 }),
    settle: Flags.integer({
      summary: 'How long to wait at the end for confirmations and for the holders to converge, in ms.',
      default: 30_000,
      min: 0,
    }),
  };

  async run(): Promise<BenchResult> {
    const { flags } = await this.parse(KvBench);
    const mix = parseMix(flags.mix);
    const acksPolicy = policyFlag('acks', flags.acks);
    const readPolicy = policyFlag('read', flags.read);
    const base = networkSettings(flags, flags.name ?? 'bench');
    const run = randomBytes(3).toString('hex');
    const keyOf = (i: number) => `bench-${run}-k${i}`;
    const value = (c: number, i: number) =>
      `c${c}o${i}-`.padEnd(flags['value-bytes'], 'x').slice(0, flags['value-bytes']);
    const progress = new Progress({ json: this.jsonEnabled() });

    const clients: KvClient[] = [];
    try {
      // The clients join for the run (transient): the final check dumps whole tables, and a row
      // too large for a datagram (this run's or an earlier one's) reaches only members.
      for (let c = 0; c < flags.clients; c++)
        clients.push(
          await KvClient.start({ ...base, name: `${base.name}-${c + 1}`.slice(0, 64) }, flags.timeout, true),
        );
      const lat: Record<OpKind, { ms: number[]; ok: number; failed: number }> = {
        get: { ms: [], ok: 0, failed: 0 },
        put: { ms: [], ok: 0, failed: 0 },
        delete: { ms: [], ok: 0, failed: 0 },
      };
      const written: Array<{ entry: Entry; client: KvClient; ok: boolean }> = [];
      let done = 0;
      const total = flags.clients * flags.ops;
      const started = performance.now();
      await Promise.all(
        clients.map(async (client, c) => {
          for (let i = 0; i < flags.ops; i++) {
            const kind = pick(mix);
            const key = keyOf(Math.floor(Math.random() * flags.keys));
            if (kind === 'get') {
              const r = await client.read(key, readPolicy, flags.timeout);
              lat.get.ms.push(r.ms);
              lat.get[r.ok ? 'ok' : 'failed']++;
            } else {
              const op: KvOp = kind === 'put' ? { kind, key, value: value(c, i) } : { kind, key };
              const r = await client.write(op, acksPolicy, flags.acks, flags.timeout, true);
              const [origin, seq] = r.id.split(':') as [string, string];
              written.push({
                entry: { origin, seq: Number(seq), lamport: r.lamport, text: encodeOp(op) },
                client,
                ok: r.ok,
              });
              lat[kind].ms.push(r.ms);
              lat[kind][r.ok ? 'ok' : 'failed']++;
            }
            done++;
            progress.update(`${done}/${total} operations`);
          }
        }),
      );
      const elapsedMs = performance.now() - started;
      progress.done();

      // Settle: every write confirmed by at least one holder (timed-out ones are still retried),
      // then every holder the group knows alive and holding one log.
      const settleStart = Date.now();
      const unconfirmedNow = () =>
        written.filter(
          (w) =>
            !w.ok && (w.client.kv.writeStatus(`${w.entry.origin}:${w.entry.seq}`)?.acked.length ?? 0) === 0,
        );
      progress.update('waiting for every write to be confirmed');
      await clients[0]!.until(() => unconfirmedNow().length === 0, flags.settle);
      const unconfirmed = unconfirmedNow().map((w) => `${w.entry.origin}:${w.entry.seq}`);
      // Holders the acks named (each ack lists the holders its sender knows): a holder that died
      // before this client heard of it is still one the check must account for.
      const named = new Map<string, string>();
      for (const w of written) {
        const id = `${w.entry.origin}:${w.entry.seq}`;
        const st = w.client.kv.writeStatus(id);
        for (const m of st?.missing ?? []) named.set(m.id, m.name);
        for (const a of st?.acked ?? []) named.set(a, w.client.nameOf(a));
        w.client.kv.settle(id);
      }
      for (const c of clients) for (const [id, name] of c.namedHolders) named.set(id, name);
      const observer = clients[0]!;
      const converged = () => {
        const hs = observer.kv.holders();
        const heard = new Set(hs.map((h) => h.id));
        return (
          hs.length > 0 &&
          [...named.keys()].every((id) => heard.has(id)) &&
          hs.every((h) => h.state === 'alive') &&
          new Set(hs.map((h) => `${h.digest}:${h.count}`)).size === 1
        );
      };
      progress.update('waiting for the holders to converge');
      const ok = await observer.until(converged, Math.max(0, flags.settle - (Date.now() - settleStart)));
      const convergedMs = ok ? Date.now() - settleStart : null;
      progress.done();

      // Check every holder against LWW over every write made.
      const expected = foldLww(written.map((w) => w.entry));
      const problems: string[] = [];
      if (unconfirmed.length > 0)
        problems.push(
          `${unconfirmed.length} write(s) were never confirmed by any holder (first: ${unconfirmed[0]}); their outcome is unknown`,
        );
      if (!ok) {
        const hs = observer.kv.holders();
        problems.push(
          `holders did not converge within ${flags.settle} ms: ${hs.map((h) => `${h.name} ${h.state} ${h.count} ops ${h.digest.slice(0, 8)}`).join(', ')}`,
        );
      }
      const holders: HolderCheck[] = [];
      const live = observer.kv.liveHolders().sort((a, b) => (a.name < b.name ? -1 : 1));
      const liveIds = new Set(live.map((h) => h.id));
      const heardIds = new Set(observer.kv.holders().map((h) => h.id));
      for (const [id, name] of named)
        if (!heardIds.has(id))
          holders.push({
            name,
            ok: false,
            keys: 0,
            differences: [`holder ${name} was known to the group but is not live: not checked`],
          });
      for (const h of observer.kv.holders())
        if (!liveIds.has(h.id))
          holders.push({
            name: h.name,
            ok: false,
            keys: 0,
            differences: [`${h.name} is ${h.state}: not checked`],
          });
      const settleDeadline = settleStart + flags.settle;
      for (const h of live) {
        let rows: KvVersion[] = [];
        let differences: string[] = [];
        let failure: string | null = null;
        // Equal advertised digests can be a heartbeat old: a holder one write behind at the first
        // dump is dumped again until it matches or the settle time is over, so only a state that
        // stays wrong is reported.
        for (;;) {
          try {
            rows = (await observer.dump(h, flags.timeout)).filter((v) => v.key.startsWith(`bench-${run}-`));
            failure = null;
          } catch (err) {
            failure = (err as Error).message;
          }
          differences = failure === null ? compare(h.name, expected, rows) : [failure];
          if (differences.length === 0 || Date.now() >= settleDeadline) break;
          await new Promise((r) => setTimeout(r, REDUMP_INTERVAL_MS));
        }
        if (failure !== null) {
          holders.push({ name: h.name, ok: false, keys: 0, differences });
          continue;
        }
        holders.push({
          name: h.name,
          ok: differences.length === 0,
          keys: rows.filter((v) => v.value !== null).length,
          differences,
        });
      }
      for (const h of holders) problems.push(...h.differences);

      const latency = {} as Record<OpKind | 'all', LatencyRow>;
      for (const k of KINDS) latency[k] = summarize(lat[k].ms, lat[k].ok, lat[k].failed);
      latency.all = summarize(
        KINDS.flatMap((k) => lat[k].ms),
        KINDS.reduce((n, k) => n + lat[k].ok, 0),
        KINDS.reduce((n, k) => n + lat[k].failed, 0),
      );
      const result: BenchResult = {
        ok: problems.length === 0,
        clients: flags.clients,
        opsPerClient: flags.ops,
        mix: flags.mix,
        keys: flags.keys,
        acks: flags.acks,
        read: flags.read,
        elapsedMs: Math.round(elapsedMs),
        opsPerSec: Math.round((total / elapsedMs) * 1000),
        latency,
        writes: written.length,
        unconfirmed,
        convergedMs,
        holders,
        problems,
      };
      if (!this.jsonEnabled())
        this.render(
          result,
          live.map((h) => h.name),
          expected.size,
        );
      if (!result.ok) process.exitCode = EXIT_GROUP;
      return result;
    } finally {
      progress.done();
      await Promise.all(clients.map((c) => c.stop()));
    }
  }

  private render(r: BenchResult, holders: string[], keys: number): void {
    this.log(
      `${r.clients} clients x ${r.opsPerClient} ops (get:put:delete ${r.mix}) on ${r.keys} keys, --acks ${r.acks}, --read ${r.read}; holders: ${escapeForTerminal(holders.join(', ')) || '(none)'}`,
    );
    this.log(
      `${r.clients * r.opsPerClient} operations in ${(r.elapsedMs / 1000).toFixed(2)} s: ${r.opsPerSec} ops/s`,
    );
    const f = (ms: number) => ms.toFixed(1);
    this.log(
      table(
        ['OP', 'COUNT', 'OK', 'FAILED', 'P50 MS', 'P90 MS', 'P99 MS', 'MAX MS'],
        ([...KINDS, 'all'] as const).map((k) => {
          const l = r.latency[k];
          return [
            k,
            String(l.count),
            String(l.ok),
            String(l.failed),
            f(l.p50Ms),
            f(l.p90Ms),
            f(l.p99Ms),
            f(l.maxMs),
          ];
        }),
      ),
    );
    if (r.convergedMs !== null)
      this.log(`holders converged ${(r.convergedMs / 1000).toFixed(2)} s after the last operation`);
    if (r.ok)
      this.log(
        chalk.green(
          `SUCCESS: every holder (${escapeForTerminal(r.holders.map((h) => h.name).join(', '))}) holds the expected state of ${keys} key(s), last writer wins over ${r.writes} write(s)`,
        ),
      );
    else {
      this.log(chalk.red(`FAILURE: ${r.problems.length} problem(s)`));
      // Problems quote holders' names, keys and values: escaped.
      for (const p of r.problems.slice(0, 50)) this.log(`  ${escapeForTerminal(p)}`);
      if (r.problems.length > 50) this.log(`  ... and ${r.problems.length - 50} more (--json lists all)`);
    }
  }
}

function parseMix(s: string): number[] {
  const m = /^([0-9]{1,6}):([0-9]{1,6}):([0-9]{1,6})$/.exec(s);
  const w = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
  if (!w || w[0]! + w[1]! + w[2]! === 0)
    throw new UsageError(`--mix ${s} is not valid; give three weights get:put:delete, e.g. 50:40:10`);
  return w;
}

function pick(weights: number[]): OpKind {
  const sum = weights.reduce((a, b) => a + b, 0);
  let x = Math.random() * sum;
  for (let i = 0; i < KINDS.length; i++) {
    x -= weights[i]!;
    if (x < 0 && weights[i]! > 0) return KINDS[i]!;
  }
  return KINDS[weights.findLastIndex((w) => w > 0)]!;
}

/** Nearest-rank percentiles. */
function summarize(ms: number[], ok: number, failed: number): LatencyRow {
  const s = [...ms].sort((a, b) => a - b);
  const at = (p: number) =>
    s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  return {
    count: s.length,
    ok,
    failed,
    p50Ms: jsonMs(at(50)),
    p90Ms: jsonMs(at(90)),
    p99Ms: jsonMs(at(99)),
    maxMs: jsonMs(s.length ? s[s.length - 1]! : 0),
  };
}

function describe(v: KvVersion | undefined): string {
  if (!v) return 'nothing';
  const what = v.value === null ? 'a tombstone' : JSON.stringify(v.value);
  return `${what} (lamport ${v.lamport}, ${v.origin.slice(0, 8)}:${v.seq})`;
}

function compare(holder: string, expected: Map<string, KvVersion>, rows: KvVersion[]): string[] {
  const out: string[] = [];
  const got = new Map(rows.map((v) => [v.key, v]));
  for (const key of new Set([...expected.keys(), ...got.keys()])) {
    const e = expected.get(key);
    const g = got.get(key);
    if (e && g && e.value === g.value && e.lamport === g.lamport && e.origin === g.origin && e.seq === g.seq)
      continue;
    out.push(`${holder}: ${key}: expected ${describe(e)}, holds ${describe(g)}`);
  }
  return out;
}
