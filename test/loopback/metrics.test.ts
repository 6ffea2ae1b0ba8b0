/**
 * `--metrics` as a user runs it: the built CLI on loopback, scraped over HTTP as Prometheus would.
 * `peer up`: members by state follow a second peer joining and being killed; a port in use or a bad
 * address stops the command with exit 2 and one line. `peer replicate` (a holder): what it keeps,
 * what anti-entropy brought it and what appends wrote, scraped while it works. `peer token-ring`:
 * the first token, then passes and critical sections as a second peer joins the ring.
 */
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, loopbackFlags, runCli, startCli, tempDir, testPort, type Lines } from '../support/proc.js';
import { sample } from '../support/prometheus.js';

const procs: Lines[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (alive(p)) p.child.kill('SIGKILL');
    await p.exited;
  }
});

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
  return res.text();
}

/** Scrapes until `pred` holds on the text, up to `timeoutMs`; returns the last text. */
async function scrapeUntil(url: string, pred: (text: string) => boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await scrape(url);
    if (pred(text)) return text;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A metrics port other than the group's (testPort's range is 40000-59999). */
const metricsPort = (group: number) => 20000 + (group % 20000);

describe('peer up --metrics on loopback', () => {
  it('serves members by state that follow a peer joining and being killed', async () => {
    const dir = tempDir('metrics-lo');
    const group = testPort();
    const port = metricsPort(group);
    const ana = startCli([
      'up',
      '--name',
      'ana',
      '--log-format',
      'json',
      '--metrics',
      `127.0.0.1:${port}`,
      ...loopbackFlags(group, dir),
    ]);
    procs.push(ana);
    await ana.until((l) => l.json().some((e) => e.event === 'metrics'), 20_000, 'ana to serve metrics');
    const url = ana.json().find((e) => e.event === 'metrics')!.url as string;
    expect(url).toBe(`http://127.0.0.1:${port}/metrics`);

    const first = await scrape(url);
    expect(sample(first, 'peer_members{state="alive"}')).toBe(0);
    expect(first).toContain('# TYPE peer_members gauge');
    // prom-client's process metrics come along.
    expect(sample(first, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(first).toContain('# TYPE nodejs_eventloop_lag_seconds gauge');

    const ben = startCli(['up', '--name', 'ben', ...loopbackFlags(group, dir)]);
    procs.push(ben);
    const joined = await scrapeUntil(
      url,
      (t) => sample(t, 'peer_members{state="alive"}') === 1,
      20_000,
      'ben alive',
    );
    expect(sample(joined, 'peer_member_joins_total')).toBe(1);
    expect(sample(joined, 'peer_datagrams_received_total')).toBeGreaterThan(0);

    ben.child.kill('SIGKILL');
    await ben.exited;
    const dead = await scrapeUntil(
      url,
      (t) => sample(t, 'peer_members{state="dead"}') === 1,
      15_000,
      'ben dead',
    );
    expect(sample(dead, 'peer_members{state="alive"}')).toBe(0);
    expect(sample(dead, 'peer_suspicions_total')).toBe(1);
    expect(sample(dead, 'peer_deaths_total')).toBe(1);
    // Checkpoints run every second while the peer is up: their commit times are in the histogram.
    expect(sample(dead, 'peer_checkpoint_commit_seconds_count')).toBeGreaterThan(0);
    expect(sample(dead, 'peer_coordinator{role="self"}')).toBe(1);

    expect((await fetch(url.replace('/metrics', '/other'))).status).toBe(404);

    ana.child.kill('SIGTERM');
    expect(await ana.exited).toBe(0);
    await expect(fetch(url)).rejects.toThrow();
  });

  it('exits 2 naming the port when it is in use, before joining the group', async () => {
    const dir = tempDir('metrics-busy');
    const group = testPort();
    const port = metricsPort(group);
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    try {
      const r = await runCli([
        'up',
        '--name',
        'ana',
        '--metrics',
        String(port),
        ...loopbackFlags(group, dir),
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([
        `peer: --metrics 127.0.0.1:${port}: port ${port} is in use on 127.0.0.1: choose another port`,
      ]);
      expect(r.stdout).toBe('');
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it.each(['nope', '127.0.0.1:0', 'example.com:9464'])(
    'exits 2 with one line for --metrics %s',
    async (spec) => {
      const r = await runCli([
        'up',
        '--name',
        'ana',
        '--metrics',
        spec,
        ...loopbackFlags(testPort(), tempDir('metrics-bad')),
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`--metrics '${spec}'`);
      expect(r.stdout).toBe('');
    },
  );
});

describe('peer replicate --metrics on loopback', () => {
  it('a late holder shows what anti-entropy brought it, then what appends write', async () => {
    const root = tempDir('metrics-replicate');
    const group = testPort();
    const port = metricsPort(group);
    const flags = [
      ...loopbackFlags(group, path.join(root, 'data'), 'local'),
      '--dir',
      path.join(root, 'replicas'),
    ];
    const append = async (text: string) => {
      const r = await runCli(['replicate', text, ...flags, '--acks', 'all', '--json']);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { confirmed: string[] }).confirmed;
    };
    const h2 = startCli(['replicate', '--name', 'h2', '--log-format', 'json', ...flags]);
    procs.push(h2);
    await h2.until((l) => l.json().some((e) => e.event === 'up'), 20_000, 'h2 up');
    const before = ['first', 'ünïcødé 😀'];
    for (const t of before) await append(t);

    // h1 starts with the group's entries missing: anti-entropy brings them, counted as repair.
    const h1 = startCli([
      'replicate',
      '--name',
      'h1',
      '--log-format',
      'json',
      '--metrics',
      String(port),
      ...flags,
    ]);
    procs.push(h1);
    await h1.until((l) => l.json().some((e) => e.event === 'metrics'), 20_000, 'h1 to serve metrics');
    const url = h1.json().find((e) => e.event === 'metrics')!.url as string;
    expect(url).toBe(`http://127.0.0.1:${port}/metrics`);
    const bytes = (texts: string[]) => texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
    const repaired = await scrapeUntil(
      url,
      (t) => sample(t, 'peer_replica_written_entries_total{via="repair"}') === before.length,
      20_000,
      'h1 repaired',
    );
    expect(sample(repaired, 'peer_replica_entries')).toBe(before.length);
    expect(sample(repaired, 'peer_replica_written_bytes_total{via="repair"}')).toBe(bytes(before));
    expect(repaired).toContain('# TYPE peer_replica_sync_sessions_total counter');
    // Reliable delivery carries large entries for a holder: its counters are there too.
    expect(repaired).toContain('# TYPE peer_reliable_lost_total counter');
    expect(repaired).not.toContain('peer_election_term');

    // An append acknowledged by every holder is on h1's disk, and in its metrics at once.
    expect(await append('after')).toEqual(['h1', 'h2']);
    const appended = await scrape(url);
    expect(sample(appended, 'peer_replica_entries')).toBe(before.length + 1);
    expect(sample(appended, 'peer_replica_written_entries_total{via="append"}')).toBe(1);
    expect(sample(appended, 'peer_replica_written_bytes_total{via="append"}')).toBe(bytes(['after']));

    h1.child.kill('SIGTERM');
    expect(await h1.exited).toBe(0);
    await expect(fetch(url)).rejects.toThrow();
  });

  it('refuses --metrics on a one-shot append with exit 2 and one line, but not PEER_METRICS', async () => {
    const r = await runCli([
      'replicate',
      'hello',
      '--metrics',
      '9464',
      ...loopbackFlags(testPort(), tempDir('metrics-oneshot')),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      'peer: --metrics is for a holder, which runs until stopped: omit MESSAGE',
    ]);

    // Exported for the holders of this shell, PEER_METRICS does not stop an append: it runs (and
    // fails for want of a holder, exit 1).
    const appended = await runCli(
      ['replicate', 'hello', '--timeout', '300', ...loopbackFlags(testPort(), tempDir('metrics-env'))],
      { env: { PEER_METRICS: '9464' } },
    );
    expect(appended.code, appended.stderr).toBe(1);
    expect(appended.stderr).toContain('no replica holder answered');
  });
});

describe('peer token-ring --metrics on loopback', () => {
  it('shows the first token, then passes and critical sections as it goes round a ring of two', async () => {
    const group = testPort();
    const port = metricsPort(group);
    const dir = tempDir('metrics-ring');
    const ring = (name: string, extra: string[]) => {
      const p = startCli(['token-ring', '--name', name, '--json', ...extra, ...loopbackFlags(group, dir)]);
      procs.push(p);
      return p;
    };
    // Alone, ann makes the ring's first token after a short silence.
    const ann = ring('ann', ['--hold', '20', '--metrics', String(port)]);
    await ann.until((l) => l.json().some((e) => e.event === 'metrics'), 20_000, 'ann to serve metrics');
    const url = ann.json().find((e) => e.event === 'metrics')!.url as string;
    const first = await scrapeUntil(
      url,
      (t) => sample(t, 'peer_token_regenerations_total{reason="first"}') === 1,
      20_000,
      'the first token',
    );
    expect(sample(first, 'peer_token_ring_members')).toBe(1);
    expect(sample(first, 'peer_token_generation')).toBeGreaterThan(0);
    expect(first).not.toContain('peer_election_term');

    const ben = ring('ben', []);
    const passes = sample(first, 'peer_token_passes_total')!;
    const critical = sample(first, 'peer_token_critical_sections_total')!;
    await scrapeUntil(
      url,
      (t) =>
        sample(t, 'peer_token_ring_members') === 2 &&
        sample(t, 'peer_token_passes_total')! > passes &&
        sample(t, 'peer_token_critical_sections_total')! > critical + 1,
      20_000,
      'turns in a ring of two',
    );

    ann.child.kill('SIGTERM');
    expect(await ann.exited).toBe(0);
    ben.child.kill('SIGTERM');
    expect(await ben.exited).toBe(0);
  });
});
