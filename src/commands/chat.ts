import readline from 'node:readline';
import { Flags } from '@oclif/core';
import chalk from 'chalk';
import { EXIT_INTERRUPTED, PeerCommand } from '../cli/base.js';
import {
  CHAT_DISCOVERY_MS,
  FILE_DISCOVERY_SETTLE_MS,
  CHAT_JOIN_HISTORY_LINES,
  ChatSession,
  storedLines,
  type LineFeed,
} from '../cli/chat.js';
import { networkFlags } from '../cli/flags.js';
import {
  FILE_PROGRESS_POLL_MS,
  ReceivingBars,
  humanBytes,
  incomingLine,
  outcomeText,
  parseByteSize,
  progressBar,
  sentJson,
} from '../cli/files.js';
import { Progress, showingWait } from '../cli/progress.js';
import { checkOutgoingFile, openOutgoingFile } from '../storage/files.js';
import type { IncomingEvent, OutgoingFile, TransferResult } from '../p2p/files/index.js';
import { defaultName, networkSettings, untilSignal } from '../cli/peer.js';
import { UsageError } from '../cli/network.js';
import { clockTime, paintName } from '../cli/output.js';
import { PasteJoiner } from '../cli/paste.js';
import { durationMs } from '../cli/run/duration.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import {
  Chat,
  ChatError,
  CHAT_HISTORY_KEEP_MAX,
  CHAT_TEXT_BYTES_MAX,
  type ChatLine,
  type Presence,
} from '../p2p/chat.js';
import type { AckStatus, LostReport, SendResult } from '../p2p/reliable/index.js';
import type { MemberView } from '../p2p/protocol.js';
import { isPeerName } from '../p2p/wire.js';

export const EXIT_NOT_DELIVERED = 1;
/** After Ctrl-C, how long --send-file waits for its receivers to hear that it stopped. */
const FILE_CANCEL_WAIT_MS = 2000;

export default class ChatCommand extends PeerCommand {
  static override summary =
    'Chat with the group: interactive, or scripted with --send, --send-file, --listen, --bot, --history.';
  static override description = `Group messages reach every chat member exactly once and in each sender's order, or the loss is shown ("3 messages from bob were lost"). Direct messages (/msg, --to) are acknowledged and retried. A newcomer receives the last ${CHAT_JOIN_HISTORY_LINES} lines from a member already there. Every line seen is stored in the peer's SQLite file.

Each line reads "12:03:04.120 alice: hello": the sender's clock, its name, the text. Lines are shown in Lamport order (a logical clock every message carries, so a reply never shows above what it answers); --show-lamport prints that time too ("12:03:04.120 L42 alice: hello").

Files: --send-file PATH (or /send PATH in the interactive chat) offers a file to every chat member (or the --to member); each receiver that accepts writes it to <data-dir>/files/<sender>/<name> (--download-dir to change the folder), through a temporary file, never over an existing file (a name taken gets " (1)" before its extension), and keeps it only if its SHA-256 matches. A receiver refuses a file over its --max-file-bytes or its free disk space, and the sender is told why. A receiver killed mid-transfer and started again gets the rest of the file while the sender still runs. --send-file exits 0 once every receiver holds the verified file; otherwise 1, naming who does not and why.

Interactive commands: /msg NAME text, /send PATH, /who, /history [N], /quit (or Ctrl-D, Ctrl-C). Only chat members are announced as joining or leaving and listed by /who: a peer running peer up, a worker or a one-shot --send is not in the chat (a --send line still shows under its sender's name). When stdin is not a terminal, each line read is sent as a message and the command exits when input ends (exit 0 once every member acknowledged every line).

Exit codes: 0 delivered (acknowledged by every member, or the --to target; for a file: held verified by each), 1 not delivered (the message names who did not acknowledge), 2 bad usage or a file that cannot be read.`;
  static override examples = [
    '<%= config.bin %> chat --interface 127.0.0.1 --name alice',
    '<%= config.bin %> chat --interface 127.0.0.1 --name bob --listen --json',
    '<%= config.bin %> chat --interface 127.0.0.1 --name carol --send "hello everyone"',
    '<%= config.bin %> chat --interface 127.0.0.1 --name carol --send "just for you" --to alice',
    'git diff | <%= config.bin %> chat --interface 127.0.0.1 --name carol --send -',
    'echo "from a script" | <%= config.bin %> chat --interface 127.0.0.1 --name script',
    '<%= config.bin %> chat --interface 127.0.0.1 --name carol --send-file /etc/hostname',
    '<%= config.bin %> chat --interface 127.0.0.1 --name carol --send-file /etc/hostname --to bob',
    '<%= config.bin %> chat --interface 127.0.0.1 --name bob --listen --download-dir /tmp/incoming --max-file-bytes 100M',
    '<%= config.bin %> chat --interface 127.0.0.1 --name robot --bot --every 2s',
    '<%= config.bin %> chat --name alice --history 20',
    '<%= config.bin %> chat --name alice --history 20 --show-lamport',
  ];
  static override flags = {
    ...networkFlags,
    send: Flags.string({
      summary:
        'Send TEXT (- reads the whole of stdin as one message), wait until every member (or --to) acknowledged it, and exit.',
      exclusive: ['listen', 'bot', 'history'],
    }),
    'send-file': Flags.string({
      summary:
        'Send the file at PATH to every member (or --to), wait until each holds it verified, and exit.',
      exclusive: ['send', 'listen', 'bot', 'history'],
    }),
    to: Flags.string({
      summary: 'With --send or --send-file: send to this member only.',
      relationships: [{ type: 'some', flags: ['send', 'send-file'] }],
    }),
    'download-dir': Flags.string({
      summary: 'Where received files go, in a folder per sender (default: <data-dir>/files).',
    }),
    'max-file-bytes': Flags.string({
      summary:
        'Refuse files larger than this, like 5000000, 512K, 100M or 2G (default: what the disk has room for).',
    }),
    listen: Flags.boolean({
      summary: 'Print every message as a line until Ctrl-C.',
      default: false,
      exclusive: ['bot', 'history'],
    }),
    json: Flags.boolean({
      summary: 'With --listen, --history, --send or --send-file: one JSON object per line.',
      default: false,
    }),
    'show-lamport': Flags.boolean({
      summary: "Show each line's Lamport time (L42), the logical time that orders lines across peers.",
      default: false,
    }),
    bot: Flags.boolean({
      summary: 'Send a message periodically (see --every) until Ctrl-C.',
      default: false,
    }),
    every: Flags.string({ summary: 'With --bot: period, like 500ms, 2s, 1m or 1h.', default: '2s' }),
    history: Flags.integer({
      summary: 'Print the last N stored lines of this peer, without joining the group.',
      min: 1,
      max: 100_000,
    }),
    wait: Flags.integer({
      summary: 'How long --send waits for acknowledgements, in ms.',
      default: 5000,
      min: 100,
      max: 600_000,
    }),
  };

  private json = false;
  private showLamport = false;

  async run(): Promise<void> {
    const { flags } = await this.parse(ChatCommand);
    this.json = flags.json;
    this.showLamport = flags['show-lamport'];
    if (flags.history !== undefined)
      return this.printStored(flags['data-dir'], flags.name ?? defaultName(), flags.history);
    if (flags.send !== undefined)
      return this.sendOnce(
        flags,
        flags.send === '-' ? await readMessage(process.stdin) : flags.send,
        flags.to,
      );
    if (flags['send-file'] !== undefined) return this.sendFileOnce(flags, flags['send-file'], flags.to);
    if (flags.listen) return this.listen(flags);
    if (flags.bot) return this.bot(flags, parseDuration(flags.every));
    if (!process.stdin.isTTY) return this.pipe(flags);
    return this.interactive(flags);
  }

  // ---- modes ---------------------------------------------------------------------------------

  private printStored(dataDir: string, name: string, n: number): void {
    if (!isPeerName(name)) throw new UsageError(`--name '${name}' is not a valid name`);
    const { lines, me, rejected } = storedLines(dataDir, name, n);
    if (lines.length === 0 && !this.json) this.log(chalk.gray('no stored messages'));
    for (const l of lines) this.printLine(l, me);
    warnRejected(rejected);
  }

  private async sendOnce(flags: FlagValues, text: string, toName: string | undefined): Promise<void> {
    checkText(text);
    const j = await this.join(flags, 0, false);
    try {
      const members = await showingWait('looking for chat members', j.discover(toName), { json: this.json });
      if (toName !== undefined) {
        const targets = members.filter((m) => m.name === toName);
        if (targets.length === 0) {
          const online = members.map((m) => m.name).join(', ') || 'nobody';
          this.notDelivered(
            `no chat member named '${toName}' is online (online: ${online}); nothing was sent`,
          );
        }
        const results = await Promise.all(
          targets.map(
            (m) =>
              new Promise<{ m: MemberView; r: SendResult; line: ChatLine }>((resolve) => {
                const line = j.chat.whisper(m.id, text, (r) => resolve({ m, r, line }));
              }),
          ),
        );
        for (const { line } of results.slice(0, 1)) this.printLine(line, j.me);
        const failed = results.filter((x) => !x.r.ok);
        if (failed.length > 0)
          this.notDelivered(
            `not acknowledged by ${failed.map((x) => `${x.m.name} (${x.r.ok ? '' : reasonText(x.r.reason)})`).join(', ')}`,
          );
        return;
      }
      if (members.length === 0)
        this.notDelivered(
          `no chat member answered within ${CHAT_DISCOVERY_MS} ms; the message was not delivered`,
        );
      const status = await this.sayAndWait(j, text, flags.wait);
      this.failUnlessComplete(j, [status]);
    } finally {
      await j.stop();
    }
  }

  private async sendFileOnce(flags: FlagValues, path: string, toName: string | undefined): Promise<void> {
    const usage = (err: Error): never => {
      throw new UsageError(`--send-file: ${err.message}`);
    };
    await checkOutgoingFile(path).catch(usage);
    // Its SHA-256 (a read of the whole file: about 0.8 s for 256 MiB on a 2-core test machine) is
    // worked out while the peer starts and finds the group, not before: neither waits for the other.
    const opening = openOutgoingFile(path);
    opening.catch(() => undefined); // its failure is met below (or is moot if joining fails)
    try {
      const j = await this.join(flags, 0, false);
      try {
        const members = await j.discover(toName, FILE_DISCOVERY_SETTLE_MS);
        const file = await opening.catch(usage);
        const targets = toName === undefined ? members : members.filter((m) => m.name === toName);
        if (targets.length === 0) {
          const online = members.map((m) => m.name).join(', ') || 'nobody';
          this.notDelivered(
            toName === undefined
              ? `no chat member answered within ${CHAT_DISCOVERY_MS} ms; the file was not sent`
              : `no chat member named '${toName}' is online (online: ${online}); nothing was sent`,
          );
        }
        const result = await this.sendFileShowing(j, file, targets, toName !== undefined);
        if (result.readError !== null)
          throw new UsageError(`--send-file: cannot read ${path}: ${result.readError}`);
        if (this.json) this.out(sentJson(file, result));
        else {
          const holders = result.receivers.filter((r) => r.status === 'done').map((r) => paintName(r.name));
          if (holders.length > 0)
            this.out(
              `${escapeForTerminal(file.name)} (${humanBytes(file.bytes)}) is held by ${holders.join(', ')} (SHA-256 verified)`,
            );
        }
        if (!result.ok) this.notDelivered(notHeldText(file, result));
      } finally {
        await j.stop();
      }
    } finally {
      // Closed whatever happened meanwhile, once it was open.
      await (await opening.catch(() => undefined))?.close();
    }
  }

  /** Sends a file with a progress bar on a terminal; the outcome once every receiver is finished. */
  private async sendFileShowing(
    j: ChatSession,
    file: OutgoingFile,
    targets: MemberView[],
    unicast: boolean,
  ): Promise<TransferResult> {
    const { sender, done } = j.sendFile(file, targets, unicast);
    const progress = new Progress({ json: this.json, afterMs: 0 });
    const who = unicast ? targets[0]!.name : `${targets.length} member(s)`;
    const show = () => {
      const p = sender.progress();
      progress.update(`sending ${file.name} to ${who} ${progressBar(p.ackedBytes, p.bytes)}`);
    };
    show();
    const timer = setInterval(show, FILE_PROGRESS_POLL_MS);
    // Ctrl-C: the receivers are told to drop what they hold (not left waiting for the rest), then
    // we leave. A second Ctrl-C finds no listener and ends the process at once.
    let onSignal!: () => void;
    const interrupted = new Promise<null>((resolve) => (onSignal = () => resolve(null)));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const result = await Promise.race([done, interrupted]);
      if (result) return result;
      clearInterval(timer);
      progress.done();
      await Promise.race([
        new Promise<void>((told) => sender.cancel(told)),
        new Promise((r) => setTimeout(r, FILE_CANCEL_WAIT_MS)),
      ]);
      const told = sender.outcomes().filter((r) => r.status === 'cancelled');
      process.stderr.write(
        `${this.config.bin}: interrupted: ${escapeForTerminal(file.name)} was not sent` +
          (told.length > 0
            ? ` to ${told.map((r) => escapeForTerminal(r.name)).join(', ')} (told to drop what they had)\n`
            : '\n'),
      );
      return this.exit(EXIT_INTERRUPTED);
    } finally {
      clearInterval(timer);
      progress.done();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }

  /** /send PATH in the interactive chat: the file to every chat member, the outcome shown when it ends. */
  private async sendFromChat(j: ChatSession, path: string, print: (s: string) => void): Promise<void> {
    let file;
    try {
      file = await openOutgoingFile(path);
    } catch (err) {
      return print(chalk.red(escapeForTerminal((err as Error).message)));
    }
    try {
      const targets = j.chat.members();
      if (targets.length === 0) return print(chalk.gray('nobody else is here: the file was not sent'));
      print(
        chalk.gray(
          `sending ${escapeForTerminal(file.name)} (${humanBytes(file.bytes)}) to ${targets.length} member(s)`,
        ),
      );
      const { done } = j.sendFile(file, targets, false);
      const result = await done;
      if (result.ok)
        print(
          `${escapeForTerminal(file.name)} is held by ${result.receivers.map((r) => paintName(r.name)).join(', ')} (SHA-256 verified)`,
        );
      else print(chalk.red(escapeForTerminal(notHeldText(file, result))));
    } finally {
      await file.close();
    }
  }

  private async listen(flags: FlagValues): Promise<void> {
    const j = await this.join(flags, CHAT_JOIN_HISTORY_LINES);
    const display = this.display(j);
    this.showPresence(j, display);
    await untilSignal();
    display.stop();
    await j.stop();
  }

  private async bot(flags: FlagValues, everyMs: number): Promise<void> {
    const j = await this.join(flags, 0);
    const display = this.display(j);
    let n = 0;
    const timer = setInterval(() => j.chat.say(`${j.peer.node.name} bot message ${++n}`), everyMs);
    await untilSignal();
    clearInterval(timer);
    display.stop();
    await j.stop();
  }

  /** Stdin is not a terminal: each line is a message; exit once all are acknowledged. */
  private async pipe(flags: FlagValues): Promise<void> {
    const j = await this.join(flags, 0, false);
    try {
      const members = await j.discover(undefined);
      // Lines are still stored (and served as history later) when nobody is there.
      const alone = members.length === 0;
      const waits: Array<Promise<AckStatus>> = [];
      const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
      for await (const raw of rl) {
        const text = raw.trimEnd();
        if (text.length === 0) continue;
        try {
          Chat.checkText(text);
        } catch (err) {
          this.warn(`line not sent: ${(err as Error).message}`);
          continue;
        }
        waits.push(this.sayAndWait(j, text, flags.wait));
      }
      const statuses = await Promise.all(waits);
      if (alone && statuses.length > 0)
        this.notDelivered(
          `no chat member answered within ${CHAT_DISCOVERY_MS} ms; ${statuses.length} line(s) stored here only`,
        );
      this.failUnlessComplete(j, statuses);
    } finally {
      await j.stop();
    }
  }

  private async interactive(flags: FlagValues): Promise<void> {
    let name = flags.name;
    if (!name) {
      const { input } = await import('@inquirer/prompts');
      name = await input({
        message: 'Your name in the chat',
        default: defaultName(),
        validate: (v) => isPeerName(v) || '1-64 printable characters, no slashes, no surrounding spaces',
      });
    }
    const j = await this.join({ ...flags, name }, CHAT_JOIN_HISTORY_LINES);
    const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true });
    const prompt = `${paintName(name)}> `;
    rl.setPrompt(prompt);
    const paste = new PasteJoiner(process.stdin, process.stdout);
    let open = true;
    // Lines arriving while the user types are printed above the prompt, which is then redrawn;
    // never once it closed: prompting again resumes the terminal's input, and the process would
    // stay, waiting for keys nobody reads (what /quit did).
    const print = (s: string) => {
      if (open) {
        readline.clearLine(process.stdout, 0);
        readline.cursorTo(process.stdout, 0);
      }
      process.stdout.write(`${s}\n`);
      if (open) rl.prompt(true);
    };
    this.out = print;
    const display = this.display(j);
    this.showPresence(j, display);
    print(
      chalk.gray(
        `you are ${name} at ${j.peer.node.address}; /msg NAME text, /send PATH, /who, /history [N]; /quit, Ctrl-D or Ctrl-C to leave`,
      ),
    );
    const done = new Promise<void>((resolve) =>
      rl.on('close', () => {
        open = false;
        paste.close();
        resolve();
      }),
    );
    // Ctrl-C leaves at once, as /quit and Ctrl-D do (and as kv shell and the monitor do).
    rl.on('SIGINT', () => rl.close());
    process.once('SIGINT', () => rl.close());
    process.once('SIGTERM', () => rl.close());
    rl.on('line', (raw) => {
      const typed = paste.line(raw);
      // A pasted block's lines continue under an indent until Enter sends them as one message.
      rl.setPrompt(paste.holding ? PASTE_PROMPT : prompt);
      try {
        if (typed !== null && this.typed(j, typed, print) === 'quit') return rl.close();
      } catch (err) {
        print(chalk.red(escapeForTerminal((err as Error).message)));
      }
      rl.prompt();
    });
    rl.prompt();
    await done;
    display.stop();
    await j.stop();
    process.stdout.write('\n');
  }

  /** What Enter sent in interactive mode: a pasted block of lines is one message, never a command. */
  private typed(j: ChatSession, text: string, print: (s: string) => void): 'quit' | void {
    if (!text.includes('\n')) return this.command(j, text.trim(), print);
    const message = text.replace(/^\s*\n/, '').trimEnd();
    if (message !== '') j.chat.say(message);
  }

  /** One line typed in interactive mode. */
  private command(j: ChatSession, line: string, print: (s: string) => void): 'quit' | void {
    if (line === '') return;
    if (!line.startsWith('/')) {
      j.chat.say(line);
      return;
    }
    const [cmd = '', ...rest] = line.split(/\s+/);
    switch (cmd) {
      case '/quit':
      case '/exit':
        return 'quit';
      case '/who': {
        const ms = j.chat.members();
        print(
          ms.length === 0
            ? chalk.gray('nobody else is here')
            : `here: ${ms.map((m) => paintName(m.name)).join(', ')}`,
        );
        return;
      }
      case '/history': {
        const n = rest[0] === undefined ? 20 : Number(rest[0]);
        if (!Number.isSafeInteger(n) || n < 1)
          throw new ChatError('usage: /history [N], N a positive number');
        const lines = j.history(Math.min(n, CHAT_HISTORY_KEEP_MAX * 10));
        if (lines.length === 0) print(chalk.gray('no stored messages'));
        for (const l of lines) print(this.formatLine(l, j.me));
        if (j.rejected > 0) print(chalk.yellow(rejectedText(j.rejected)));
        return;
      }
      case '/send': {
        const path = line.slice(cmd.length).trim();
        if (!path) throw new ChatError('usage: /send PATH');
        void this.sendFromChat(j, path, print);
        return;
      }
      case '/msg': {
        const [to, ...words] = rest;
        const text = words.join(' ');
        if (!to || !text) throw new ChatError('usage: /msg NAME text');
        const targets = j.chat.members().filter((m) => m.name === to);
        if (targets.length === 0) throw new ChatError(`no chat member named '${to}' is online (see /who)`);
        for (const m of targets)
          j.chat.whisper(m.id, text, (r) => {
            if (!r.ok)
              print(chalk.red(`direct message to ${paintName(m.name)} failed: ${reasonText(r.reason)}`));
          });
        return;
      }
      case '/help':
        print(
          '/msg NAME text   direct message\n/send PATH   a file to every member\n/who   members\n/history [N]   stored lines\n/quit   leave (or Ctrl-D, Ctrl-C)',
        );
        return;
      default:
        throw new ChatError(`unknown command ${cmd}; try /help`);
    }
  }

  // ---- plumbing ------------------------------------------------------------------------------

  private out: (s: string) => void = (s) => this.log(s);

  /** Exit 1 with one line on stderr: the peer ran fine, the message did not get through. */
  private notDelivered(message: string): never {
    // The message names members: escaped like every remote name.
    process.stderr.write(`${this.config.bin}: ${escapeForTerminal(message)}\n`);
    return this.exit(EXIT_NOT_DELIVERED);
  }

  /** `reader` false: a one-shot sender, which other senders must not wait for (see ChatOptions). */
  private async join(flags: FlagValues, historyWanted: number, reader = true): Promise<ChatSession> {
    const j = await ChatSession.join(networkSettings(flags), {
      historyWanted,
      reader,
      onLost: (r) => this.printLost(r),
      files: reader ? this.receiving(flags) : undefined,
    });
    warnRejected(j.rejected);
    return j;
  }

  /** What a reader does with files offered to it: lines, and a progress bar on a terminal. */
  private receiving(flags: FlagValues): NonNullable<Parameters<typeof ChatSession.join>[1]['files']> {
    const max = flags['max-file-bytes'];
    const bars = new ReceivingBars(this.json);
    return {
      downloadDir: flags['download-dir'],
      maxFileBytes: max === undefined ? undefined : parseByteSize('--max-file-bytes', max),
      onIncoming: (e: IncomingEvent) => {
        bars.onEvent(e);
        const line = incomingLine(e, this.json);
        if (line !== null) this.out(line);
      },
    };
  }

  private sayAndWait(j: ChatSession, text: string, waitMs: number): Promise<AckStatus> {
    return j.sayAndWait(text, waitMs, (line) => this.printLine(line, j.me));
  }

  private failUnlessComplete(j: ChatSession, statuses: AckStatus[]): void {
    const missing = j.unacknowledged(statuses);
    if (missing.length > 0) this.notDelivered(`not acknowledged by ${missing.join(', ')}`);
  }

  /** Lines as JSON at once (scripts sort by the lamport field), or in Lamport order for people. */
  private display(j: ChatSession): LineFeed {
    return j.feed(!this.json, (l) => this.printLine(l, j.me));
  }

  /** Chat members joining and leaving. */
  private showPresence(j: ChatSession, display: LineFeed): void {
    if (this.json) return;
    j.onPresence(display, (p: Presence) => {
      const how = p.kind === 'gone' ? 'is gone (no heartbeat)' : p.kind;
      this.out(chalk.gray(`${clockTime(Date.now())} ${paintName(p.member.name)} ${how}`));
    });
  }

  private printLine(l: ChatLine, me: string | undefined): void {
    if (this.json) {
      this.out(
        JSON.stringify({
          event: 'message',
          id: l.id,
          from: l.fromName,
          fromId: l.from,
          to: l.toName,
          toId: l.to,
          text: l.text,
          lamport: l.lamport,
          at: new Date(l.at).toISOString(),
          history: l.history,
        }),
      );
    } else this.out(this.formatLine(l, me));
  }

  private formatLine(l: ChatLine, me: string | undefined): string {
    const to =
      l.to === null
        ? ''
        : ` ${chalk.gray('→')} ${l.to === me ? chalk.bold('you') : paintName(l.toName ?? l.to)}`;
    const tag = l.history ? chalk.gray(' (history)') : '';
    const time = this.showLamport ? `${clockTime(l.at)} L${l.lamport}` : clockTime(l.at);
    return `${chalk.gray(time)} ${paintName(l.fromName)}${to}${tag}: ${textLines(l.text)}`;
  }

  private printLost(r: LostReport): void {
    const what = `${r.count} ${r.count === 1 ? 'message' : 'messages'} from ${paintName(r.fromName)} ${r.count === 1 ? 'was' : 'were'} lost`;
    if (this.json)
      this.out(
        JSON.stringify({
          event: 'lost',
          from: r.fromName,
          fromId: r.from,
          count: r.count,
          reason: r.reason,
          at: new Date().toISOString(),
        }),
      );
    else this.out(chalk.red(`${clockTime(Date.now())} ${what} (${reasonText(r.reason)})`));
  }
}

type FlagValues = Parameters<typeof networkSettings>[0] & {
  wait: number;
  'download-dir'?: string;
  'max-file-bytes'?: string;
};

/** "notes.txt is not held by bob (refused: too large ...), carol (gone ...)" (remote text: escape it). */
function notHeldText(file: { name: string }, r: TransferResult): string {
  const missing = r.receivers.filter((x) => x.status !== 'done').map(outcomeText);
  return `${file.name} is not held by ${missing.join(', ')}`;
}

function reasonText(reason: string): string {
  switch (reason) {
    case 'sender-gone':
      return 'the sender left or crashed before repairing them';
    case 'sender-restarted':
      return 'the sender restarted before repairing them';
    case 'evicted':
      return 'too far behind: the sender no longer had them';
    case 'timeout':
      return 'repair did not arrive in time';
    case 'abandoned':
      return 'the sender gave up';
    case 'gone':
      return 'the peer is gone';
    case 'too-large':
      return 'it refused the message as too large';
    case 'no-room':
      return 'it had no room for the message';
    case 'busy':
      return 'too many unacknowledged messages to that peer';
    default:
      return escapeForTerminal(reason);
  }
}

function rejectedText(n: number): string {
  return `${n} stored line(s) failed validation (damaged or forged) and were skipped; see docs/chat.md`;
}

/** Stored lines that failed validation are never shown or served: say how many the last read skipped. */
function warnRejected(rejected: number): void {
  if (rejected > 0) process.stderr.write(`peer: ${rejectedText(rejected)}\n`);
}

/** Indent of a message's second and later lines, under the line that names its sender. */
const CONTINUATION_INDENT = '    ';
/** The prompt while a pasted block waits for Enter. */
const PASTE_PROMPT = CONTINUATION_INDENT;

/**
 * A message's text for the terminal: each line escaped (escapeForTerminal), the second and later
 * ones indented, so a long message reads as lines yet cannot pass for another sender's line (those
 * start with a time, never with the indent).
 */
function textLines(text: string): string {
  return text
    .split('\n')
    .map((line) => escapeForTerminal(line))
    .join(`\n${CONTINUATION_INDENT}`);
}

/**
 * The whole of `input` as one message (`--send -`), without the one newline that ends most input
 * (`echo hi`); reading stops with a usage error once it is past the limit, so a huge input is never held.
 */
async function readMessage(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of input) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    bytes += b.length;
    if (bytes > CHAT_TEXT_BYTES_MAX)
      throw new UsageError(
        `--send -: stdin is over the ${CHAT_TEXT_BYTES_MAX}-byte limit of a message; send it as a file with --send-file PATH`,
      );
    chunks.push(b);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

function checkText(text: string): void {
  try {
    Chat.checkText(text);
  } catch (err) {
    throw new UsageError(`--send: ${(err as Error).message}`);
  }
}

/** --every: "500ms", "2s", "1.5m", "1h", or a bare number of seconds, 10ms to 24h. */
export function parseDuration(s: string): number {
  return durationMs('--every', s, 10, 86_400_000);
}
