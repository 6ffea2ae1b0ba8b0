/**
 * LAN tier: a real Prometheus server (Debian's `prometheus`) scrapes `peer up --metrics` across a
 * namespace LAN. Prometheus runs in its own host namespace with a generated config and a temporary
 * storage dir, listening on that namespace's loopback only; the test reads its HTTP API from
 * inside that namespace. The peer's metrics address is its LAN address, given explicitly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan } from '../support/netns.js';
import { Lines, tempDir } from '../support/proc.js';
import { lanUp } from '../support/lan-peer.js';

const decision = lanTierDecision();
const PORT = 47777;
const METRICS_PORT = 9464;
/** Prometheus's API, on the loopback of its own namespace. */
const PROMETHEUS_LISTEN = '127.0.0.1:9090';
/** How often Prometheus scrapes the peer: short, so the test waits on the peer, not on it. */
const SCRAPE_INTERVAL_S = 1;

function prometheusInstalled(): boolean {
  try {
    execFileSync('prometheus', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.PEER_REQUIRE_LAN === '1')
      throw new Error('prometheus is required (PEER_REQUIRE_LAN=1): .ci/run installs the Debian package');
    return false;
  }
}

describe.runIf(decision.run && prometheusInstalled())('peer up --metrics scraped by Prometheus', () => {
  let lan: NetnsLan;
  let dir: string;
  const peers: Lines[] = [];
  let prometheus: Lines;

  const up = (i: number, name: string, extra: string[] = []) => {
    const p = lanUp(lan, i, name, { port: PORT, dataDir: dir, args: extra });
    peers.push(p);
    return p;
  };

  /** GETs `url` from inside Prometheus's namespace (its API is on that namespace's loopback). */
  const fetchOnPrometheusHost = (url: string) =>
    lan.run(
      2,
      process.execPath,
      ['-e', `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t))`],
      { timeoutMs: 10_000 },
    );

  /** The value of `query` now, from Prometheus's HTTP API; undefined when it has no sample. */
  async function query(q: string): Promise<number | undefined> {
    const url = `http://${PROMETHEUS_LISTEN}/api/v1/query?query=${encodeURIComponent(q)}`;
    const r = await fetchOnPrometheusHost(url);
    if (r.code !== 0) return undefined; // not listening yet
    const body = JSON.parse(r.stdout) as {
      status: string;
      data: { result: Array<{ value: [number, string] }> };
    };
    expect(body.status).toBe('success');
    const v = body.data.result[0]?.value[1];
    return v === undefined ? undefined : Number(v);
  }

  async function queryUntil(q: string, want: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: number | undefined;
    while ((last = await query(q)) !== want) {
      if (Date.now() > deadline)
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${q} = ${want} (last ${last}); prometheus said:\n${prometheus.stderr.join('').slice(-2000)}`,
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  beforeAll(() => {
    lan = new NetnsLan(3).up();
    dir = tempDir('lan-metrics');
    const target = `${lan.host(0).address}:${METRICS_PORT}`;
    const config = path.join(dir, 'prometheus.yml');
    fs.writeFileSync(
      config,
      [
        'global:',
        `  scrape_interval: ${SCRAPE_INTERVAL_S}s`,
        `  scrape_timeout: ${SCRAPE_INTERVAL_S}s`,
        'scrape_configs:',
        '  - job_name: peer',
        '    static_configs:',
        `      - targets: ['${target}']`,
        '',
      ].join('\n'),
    );
    prometheus = new Lines(
      lan.spawn(2, 'prometheus', [
        `--config.file=${config}`,
        `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
        `--web.listen-address=${PROMETHEUS_LISTEN}`,
      ]),
    );
  });

  afterAll(() => {
    lan?.down();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('shows members by state as a peer joins and is killed', async () => {
    const ana = up(0, 'ana', ['--metrics', `${lan.host(0).address}:${METRICS_PORT}`]);
    await ana.until((l) => l.json().some((e) => e.event === 'metrics'), 30_000, 'ana to serve metrics');
    // Process start-up on a loaded 2-core machine, not the protocol, sets these deadlines.
    await queryUntil('up{job="peer"}', 1, 30_000);
    await queryUntil('peer_members{state="alive"}', 0, 10_000);

    const ben = up(1, 'ben');
    await queryUntil('peer_members{state="alive"}', 1, 30_000);
    await queryUntil('peer_member_joins_total', 1, 10_000);

    ben.child.kill('SIGKILL');
    await ben.exited;
    await queryUntil('peer_members{state="dead"}', 1, 20_000);
    await queryUntil('peer_members{state="alive"}', 0, 10_000);
    await queryUntil('peer_deaths_total', 1, 10_000);
  });

  // prom-client's own process metrics are left out: three of its gauges end in _total, which
  // promtool flags, and their names are prom-client's, shared by every Node.js exporter.
  it("passes promtool check metrics for peer's metrics (names, types and HELP as Prometheus expects)", async () => {
    const url = `http://${lan.host(0).address}:${METRICS_PORT}/metrics`;
    const scraped = await fetchOnPrometheusHost(url);
    expect(scraped.code).toBe(0);
    expect(scraped.stdout).toContain('# TYPE peer_members gauge');
    const ours = scraped.stdout
      .split('\n')
      .filter((l) => /^(# (HELP|TYPE) )?peer_/.test(l))
      .join('\n');
    expect(ours.split('\n').length).toBeGreaterThan(100);
    const lint = await lan.run(2, 'promtool', ['check', 'metrics'], {
      input: `${ours}\n`,
      timeoutMs: 10_000,
    });
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.code).toBe(0);
  });
});
