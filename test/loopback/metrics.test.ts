/**
 * `peer up --metrics` as a user runs it: the built CLI on loopback, scraped over HTTP as
 * Prometheus would. Members by state follow a second peer joining and being killed; a port in use
 * or a bad address stops the command with exit 2 and one line.
 */
import net from 'node:net';
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
