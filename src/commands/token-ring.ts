import { spawn, type ChildProcess } from 'node:child_process';
import { Flags } from '@oclif/core';
import chalk from 'chalk';
import { PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer, stderrHealth, untilSignal, type RunningPeer } from '../cli/peer.js';
import { UsageError } from '../cli/network.js';
import { clockTime, paintName } from '../cli/output.js';
import { TokenRing, type TokenExitReason } from '../p2p/token-ring/index.js';
import type { PeerEvent } from '../p2p/protocol.js';
import type { PeerId } from '../p2p/wire.js';
import { reportingDurable, TokenRingStore } from '../storage/token-ring.js';
import { listenMetrics, metering, metricsFlag } from '../cli/metrics.js';

/** How often the position of the token is shown while nothing else happens. */
const STATUS_INTERVAL_MS = 1000;
/** Ring members named in a status line; a bigger ring is "... and N more". */
const RING_NAMES_SHOWN_MAX = 8;
/** Longest --hold, in ms (an hour: a CS longer than that is a bug in a script). */
const HOLD_MS_MAX = 3_600_000;
const ROUNDS_MAX = 1_000_000;
/** How long a child that lost its lease gets between SIGTERM and SIGKILL. */
const EXEC_KILL_GRACE_MS = 2000;

type Mode = 'exec' | 'hold' | 'interactive' | 'watch';

export default class TokenRingCommand extends PeerCommand {
  static override summary = 'Join the token ring: take turns on a shared resource, one peer at a time.';
  static override description = `One token goes round the peers that run peer token-ring (ordered by id); other peers of the group (peer up, workers, chat...) are not in the ring. A peer that wants the critical section enters when the token reaches it and a majority of the ring grants it a lease; it holds it while --exec runs (or for --hold ms, or until you release it), then passes the token on.

Every entry carries a fencing token (the token's generation) that only increases: give it to the shared resource and have the resource refuse any token lower than one it has seen (see scripts/check-fencing.mjs). A lost token (its holder crashed) is remade with a higher generation by one peer, with a majority's consent; a peer cut off from the majority stops acting.

With --exec, CMD runs through the shell with PEER_FENCING_TOKEN (the generation), PEER_TOKEN_EPOCH and PEER_TOKEN_HOLDER (this peer's name) in its environment; the token moves on when it exits (a non-zero exit is reported, not fatal). If the lease is lost while CMD runs (this peer was cut off), CMD gets SIGTERM.

Without --exec or --hold: a menu to request and release the critical section when stdin is a terminal; otherwise it takes part in the ring and shows where the token is, until Ctrl-C.`;
  static override examples = [
    '<%= config.bin %> token-ring --interface 127.0.0.1 --name alice',
    `<%= config.bin %> token-ring --interface 127.0.0.1 --name bob --exec 'echo "enter $PEER_FENCING_TOKEN" >> shared.log; sleep 0.2; echo "exit $PEER_FENCING_TOKEN" >> shared.log' --rounds 5`,
    '<%= config.bin %> token-ring --interface 127.0.0.1 --name carol --hold 500 --rounds 3 --json',
  ];
  static override flags = {
    ...networkFlags,
    exec: Flags.string({
      summary: 'Run CMD (shell) in each critical section; the token moves on when it exits.',
      exclusive: ['hold'],
    }),
    hold: Flags.integer({
      summary: 'Hold each critical section this many ms (no command).',
      min: 0,
      max: HOLD_MS_MAX,
    }),
    rounds: Flags.integer({
      summary: 'Exit after this many critical sections (with --exec or --hold).',
      min: 1,
      max: ROUNDS_MAX,
    }),
    json: Flags.boolean({ summary: 'Print events as JSON lines.', default: false }),
    ...metricsFlag,
  };

  private json = false;
  private peer: RunningPeer<TokenRing> | null = null;
  /** The interactive menu while it is open, the header it shows, and lines held until it is down. */
  private menu: AbortController | null = null;
  private menuHeader = '';
  private readonly held: string[] = [];

  async run(): Promise<void> {
    const { flags } = await this.parse(TokenRingCommand);
    this.json = flags.json;
    const mode: Mode =
      flags.exec !== undefined
        ? 'exec'
        : flags.hold !== undefined
          ? 'hold'
          : process.stdin.isTTY && !flags.json
            ? 'interactive'
            : 'watch';
    if (flags.exec !== undefined && flags.exec.trim() === '')
      throw new UsageError('--exec needs a command, e.g. --exec "./use-resource.sh"');
    if (flags.rounds !== undefined && mode !== 'exec' && mode !== 'hold')
      throw new UsageError('--rounds counts critical sections: use it with --exec CMD or --hold MS');
    const settings = networkSettings(flags);
    // A write of the ring's state that fails (a full disk) is said once here, and this peer skips
    // its turns until writes work again (docs/token-ring.md).
    const health = stderrHealth();
    const metrics = await listenMetrics(flags.metrics);
    const peer = await startPeer(settings, {
      health,
      install: (node, store) => {
        const durable = store ? reportingDurable(TokenRingStore.on(store), health) : undefined;
        return node.install(
          (ctx, n) =>
            new TokenRing(ctx, n.membership, {
              timings: n.profile.tokenRing,
              ...(durable ? { durable } : {}),
            }),
        );
      },
    }).then(...metering(metrics, (tokenRing: TokenRing) => ({ tokenRing })));
    this.peer = peer;
    const tr = peer.installed;
    this.emit(
      'up',
      `${paintName(peer.node.name)} (${peer.node.id.slice(0, 8)}) joined the ring at ${peer.node.address}`,
      {
        name: peer.node.name,
        id: peer.node.id,
        address: peer.node.address,
        mode,
      },
    );
    if (metrics) this.emit('metrics', `metrics at ${metrics.url}`, { url: metrics.url });
    peer.node.on((e) => this.onEvent(e));
    // The interactive prompt shows where the token is; a periodic line would overwrite it.
    const status =
      mode === 'interactive' ? undefined : setInterval(() => this.showStatus(tr), STATUS_INTERVAL_MS);
    try {
      if (mode === 'interactive') await this.interactive(tr);
      else if (mode === 'watch') await untilSignal();
      else await this.turns(tr, mode, flags.exec, flags.hold ?? 0, flags.rounds ?? Infinity);
    } finally {
      clearInterval(status);
      tr.release();
      await peer.stop();
      await metrics?.close();
      this.emit('down', 'left the ring', {});
    }
  }

  // ---- modes -----------------------------------------------------------------------------------

  /** --exec / --hold: ask for the CS again after every exit, until --rounds or a signal. */
  private async turns(tr: TokenRing, mode: Mode, cmd: string | undefined, holdMs: number, rounds: number) {
    const name = this.peer!.node.name;
    let done = 0;
    let child: ChildProcess | null = null;
    let stop!: () => void;
    const finished = new Promise<void>((resolve) => (stop = resolve));
    const ask = () => tr.request(mode === 'hold' ? holdMs : null);
    this.peer!.node.on((e) => {
      if (e.kind === 'token-enter' && mode === 'exec') {
        child = this.runExec(cmd!, e.generation, e.epoch, name, (code) => {
          child = null;
          if (tr.inCriticalSection) tr.release();
          if (code !== 0)
            this.emit(
              'exec-failed',
              chalk.red(`command exited with ${code} (fencing token ${e.generation})`),
              {
                generation: e.generation,
                code,
              },
            );
        });
      } else if (e.kind === 'token-exit') {
        if (e.reason !== 'released' && child) {
          // Cut off from the majority: someone else may hold the resource soon. Stop acting.
          const c = child as ChildProcess;
          c.kill('SIGTERM');
          setTimeout(() => c.exitCode === null && c.kill('SIGKILL'), EXEC_KILL_GRACE_MS).unref();
        }
        if (e.reason === 'released') done++;
        if (done >= rounds) stop();
        else ask();
      }
    });
    ask();
    const signalled = untilSignal().then(() => undefined);
    await Promise.race([finished, signalled]);
    // Let a running command finish before leaving (the token must not move while it runs).
    if (child) await new Promise<void>((resolve) => (child as ChildProcess).once('exit', () => resolve()));
  }

  private runExec(
    cmd: string,
    generation: number,
    epoch: number,
    name: string,
    onExit: (code: number | string) => void,
  ): ChildProcess {
    const child = spawn(cmd, {
      shell: true,
      // With --json our stdout carries JSON lines only: the command's output goes to stderr.
      stdio: ['ignore', this.json ? process.stderr : 'inherit', 'inherit'],
      env: {
        ...process.env,
        PEER_FENCING_TOKEN: String(generation),
        PEER_TOKEN_EPOCH: String(epoch),
        PEER_TOKEN_HOLDER: name,
      },
    });
    child.once('error', (err) => onExit(`error: ${err.message}`));
    child.once('exit', (code, signal) => onExit(code ?? `signal ${signal}`));
    return child;
  }

  /**
   * A menu at the bottom of the terminal whose header and choices follow the state: what can be
   * done now, and who is in the ring. Event lines (enter, exit, join...) are printed above it: the
   * menu is taken down (AbortSignal, cleared), the lines printed, and the menu drawn again, as it
   * is when the header no longer says what is true (checked every STATUS_INTERVAL_MS).
   */
  private async interactive(tr: TokenRing): Promise<void> {
    const { select } = await import('@inquirer/prompts');
    // SIGINT between two menus, SIGTERM at any time: leave gracefully (the token is handed on).
    // Our own listener, kept until the end: the menu's signal-exit kills the process on a signal
    // that finds no other listener, and untilSignal() takes its listener off at the first signal.
    let signalled = false;
    const onSignal = () => {
      signalled = true;
      this.menu?.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const check = setInterval(() => {
      if (this.menu && this.menuHeader !== this.header(tr)) this.menu.abort();
    }, STATUS_INTERVAL_MS);
    let last: MenuAction | undefined;
    try {
      while (!signalled) {
        const state = this.state(tr);
        const choices = MENU[state].filter((c) => c.value !== 'where' || tr.status().generation > 0);
        this.menu = new AbortController();
        this.menuHeader = this.header(tr);
        let action: MenuAction;
        try {
          action = await select(
            {
              message: this.menuHeader,
              choices,
              loop: false,
              ...(choices.some((c) => c.value === last) ? { default: last } : {}),
            },
            { signal: this.menu.signal, clearPromptOnDone: true },
          );
        } catch (err) {
          if ((err as Error).name === 'AbortPromptError') continue; // redrawn with what is true now
          return; // Ctrl-C in the menu
        } finally {
          this.menu = null;
          for (const line of this.held.splice(0)) this.log(line);
        }
        last = action;
        if (action === 'leave') return;
        if (action === 'where') this.showStatus(tr, true);
        else if (action === 'request') {
          tr.request();
          this.emit('request', chalk.gray('asked for the critical section: waiting for the token'), {});
        } else if (action === 'withdraw') {
          tr.release();
          this.emit('withdraw', chalk.gray('request withdrawn'), {});
        } else tr.release();
      }
    } finally {
      clearInterval(check);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }

  /** What this peer is doing in the ring, as the interactive menu shows it. */
  private state(tr: TokenRing): MenuState {
    const s = tr.status();
    return s.inCriticalSection ? 'inside' : s.wanting ? 'waiting' : 'idle';
  }

  /** The menu's header: this peer's state and the ring, nothing that changes at every pass. */
  private header(tr: TokenRing): string {
    const s = tr.status();
    const doing = s.inCriticalSection
      ? `in the critical section with fencing token ${tr.fencingToken}`
      : s.wanting
        ? 'waiting for the token'
        : s.generation === 0
          ? 'no token yet (one is made after a short silence)'
          : 'the token is going round';
    return `${doing}; ${this.ringText(s.ring)}`;
  }

  // ---- output ----------------------------------------------------------------------------------

  private onEvent(e: PeerEvent): void {
    switch (e.kind) {
      case 'token-enter':
        return this.emit(
          'enter',
          `${chalk.green('enter')}   fencing token ${chalk.bold(e.generation)} (epoch ${e.epoch})`,
          {
            generation: e.generation,
            epoch: e.epoch,
          },
        );
      case 'token-exit':
        return this.emit(
          'exit',
          `${chalk.cyan('exit')}    fencing token ${e.generation} after ${e.heldMs} ms${exitNote(e.reason)}`,
          {
            generation: e.generation,
            epoch: e.epoch,
            reason: e.reason,
            heldMs: e.heldMs,
          },
        );
      case 'token-regenerated':
        return this.emit(
          'regenerated',
          `${chalk.yellow('new token')} generation ${e.generation}, epoch ${e.epoch}, ring of ${e.ring} (${REGENERATED_WHY[e.reason]})`,
          { generation: e.generation, epoch: e.epoch, ring: e.ring, reason: e.reason },
        );
      case 'token-stale':
        return this.emit(
          'stale',
          chalk.gray(`discarded a stale token (generation ${e.generation}, epoch ${e.epoch})`),
          {
            generation: e.generation,
            epoch: e.epoch,
            from: e.from,
          },
        );
      case 'token-skipped':
        return this.emit(
          'skipped',
          chalk.yellow(`skipped ${this.holderName(e.peer)}: it did not acknowledge the token`),
          {
            peer: e.peer,
            generation: e.generation,
          },
        );
      case 'token-ring-changed': {
        // Only peers that run the ring: `peer up` and other bystanders are not announced.
        for (const id of e.joined) this.ringEvent('join', id);
        for (const id of e.departed)
          this.ringEvent(this.peer?.node.membership.get(id)?.state === 'dead' ? 'dead' : 'left', id);
        return;
      }
    }
  }

  private ringEvent(kind: 'join' | 'dead' | 'left', id: PeerId): void {
    this.emit(kind, `${chalk.gray(kind.padEnd(7))} ${this.holderName(id)}`, {
      peer: this.holderName(id, false),
      id,
    });
  }

  /** Where the token is; `asked` also when no token was seen yet. */
  private showStatus(tr: TokenRing, asked = false): void {
    const s = tr.status();
    if (s.generation === 0 && !asked) return;
    const where =
      s.generation === 0
        ? 'no token seen yet'
        : `token at ${this.holderName(s.holder)}, generation ${s.generation}, epoch ${s.epoch}`;
    this.emit('token', chalk.gray(`${where}, ${this.ringText(s.ring)}`), {
      holder: this.holderName(s.holder, false),
      generation: s.generation,
      epoch: s.epoch,
      ring: s.ring.length,
      members: s.ring.map((id) => this.holderName(id, false)),
    });
  }

  /** "ring of 3: ann, bob, cat": the peers that run the ring, in ring order, the first few by name. */
  private ringText(ring: PeerId[]): string {
    const names = ring.slice(0, RING_NAMES_SHOWN_MAX).map((id) => this.holderName(id));
    const more = ring.length - names.length;
    return `ring of ${ring.length}: ${names.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
  }

  private holderName(id: string, paint = true): string {
    const node = this.peer?.node;
    const name = !id
      ? '(in flight)'
      : id === node?.id
        ? node.name
        : (node?.membership.get(id)?.name ?? id.slice(0, 8));
    return paint && id ? paintName(name) : name;
  }

  private emit(event: string, text: string, fields: Record<string, unknown>): void {
    if (this.json)
      this.log(
        JSON.stringify({ event, at: new Date().toISOString(), name: this.peer?.node.name, ...fields }),
      );
    else if (this.menu) {
      // A line printed under an open menu would break it: print it once the menu is down.
      this.held.push(`${clockTime(Date.now())} ${text}`);
      this.menu.abort();
    } else this.log(`${clockTime(Date.now())} ${text}`);
  }
}

type MenuState = 'idle' | 'waiting' | 'inside';
type MenuAction = 'request' | 'withdraw' | 'release' | 'where' | 'leave';

/** What can be done in each state: never a release while outside, never a request while waiting. */
const MENU: Record<MenuState, Array<{ name: string; value: MenuAction }>> = {
  idle: [
    { name: 'Request the critical section', value: 'request' },
    { name: 'Show where the token is', value: 'where' },
    { name: 'Leave the ring', value: 'leave' },
  ],
  waiting: [
    { name: 'Withdraw the request', value: 'withdraw' },
    { name: 'Show where the token is', value: 'where' },
    { name: 'Leave the ring', value: 'leave' },
  ],
  inside: [
    { name: 'Release the critical section', value: 'release' },
    { name: 'Show where the token is', value: 'where' },
    { name: 'Leave the ring (releases the critical section)', value: 'leave' },
  ],
};

const REGENERATED_WHY = {
  first: 'the first token of this ring',
  lost: 'the token was lost',
  reconfigure: 'the ring changed',
} as const;

function exitNote(reason: TokenExitReason): string {
  switch (reason) {
    case 'released':
      return '';
    case 'lease-lost':
      return chalk.red(': lease lost (cut off from the majority)');
    case 'superseded':
      return chalk.red(': a newer token exists');
    case 'stopped':
      return ' (leaving)';
  }
}
