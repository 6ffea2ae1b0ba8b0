/**
 * LAN tier for `peer chat`: the built CLI in 5 network namespaces on a bridge, nftables dropping
 * 10 % of incoming UDP on every host. Three `--listen --json` receivers; `--send` senders (one
 * process per message) must exit 0 and every message must reach every receiver exactly once.
 * Then one receiver is cut off at the switch while a long-lived sender (piped stdin) keeps
 * sending; once reconnected it must get what it missed, repaired from the sender's buffer,
 * exactly once (docs/chat.md: exactly once while the sender lives; nothing lost silently).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan, nftAvailable } from '../support/netns.js';
import { BIN, Lines, tempDir } from '../support/proc.js';

const decision = lanTierDecision();
const PORT = 47777;
/** Messages each of the two `--send` senders sends, one process each, one after the other. */
const SENDS_PER_SENDER = 3;
/** Lines the piped sender sends before and while the receiver is cut off. */
const PIPED_LINES = 4;
/** Start-up of node processes on a loaded 2-core machine, not the protocol. */
const START_MS = 20_000;
const DELIVER_MS = 10_000;
/** The node prints this on stderr once its sockets are open (open group, no key file). */
const STARTED = 'no --key-file';

type Msg = Record<string, unknown>;

describe.runIf(decision.run)('peer chat on a namespace LAN with 10 % loss', () => {
  let lan: NetnsLan;
  let data: string;
  const receivers: Lines[] = [];
  const receiverNames = ['rua', 'rub', 'ruc'];

  const chat = (host: number, args: string[]): Lines =>
    new Lines(
      lan.spawn(
        host,
        process.execPath,
        [BIN, 'chat', ...args, '--interface', lan.host(host).address, '--port', String(PORT)].concat([
          '--data-dir',
          data,
          '--profile',
          'lan',
        ]),
        { NO_COLOR: '1' },
      ),
    );
  const messages = (l: Lines): Msg[] => l.json().filter((e) => e.event === 'message');
  const lost = (l: Lines): Msg[] => l.json().filter((e) => e.event === 'lost');
  const withText = (l: Lines, text: string): Msg[] => messages(l).filter((m) => m.text === text);
  const started = (l: Lines) => l.stderr.join('').includes(STARTED);

  beforeAll(async () => {
    lan = new NetnsLan(5).up();
    if (process.env.PEER_REQUIRE_LAN === '1' && !nftAvailable())
      throw new Error('nft is required in CI for the loss scenario');
    if (nftAvailable()) lan.addLoss(10);
    data = tempDir('lan-chat');
    receiverNames.forEach((name, i) => receivers.push(chat(i, ['--name', name, '--listen', '--json'])));
    for (const [i, r] of receivers.entries())
      await r.until(started, START_MS, `${receiverNames[i]} to start`);
  }, 60_000);

  afterAll(() => lan?.down());

  it('two concurrent --send senders: each exits 0, every receiver gets every message exactly once', async () => {
    const sent: string[] = [];
    const sender = async (host: number, name: string) => {
      for (let k = 1; k <= SENDS_PER_SENDER; k++) {
        const text = `${name} message ${k}`;
        sent.push(text);
        const s = chat(host, ['--name', name, '--send', text, '--json', '--wait', '8000']);
        const code = await s.exited;
        expect(code, `${name} --send '${text}': ${s.stderr.join('')}`).toBe(0);
        // It acknowledged only after every receiver held it: each shows it already (or within a poll).
        const own = s.json().find((m) => m.text === text);
        expect(own?.id).toMatch(/^[0-9a-f]{16}\/\d+\/\d+$/);
      }
    };
    await Promise.all([sender(3, 'sid'), sender(4, 'sol')]);
    expect(sent).toHaveLength(2 * SENDS_PER_SENDER);
    for (const [i, r] of receivers.entries()) {
      await r.until(
        (l) => sent.every((t) => withText(l, t).length >= 1),
        DELIVER_MS,
        `${receiverNames[i]} to show all ${sent.length} messages`,
      );
      for (const t of sent) expect(withText(r, t), `${receiverNames[i]}: '${t}'`).toHaveLength(1);
      const ids = messages(r).map((m) => m.id);
      expect(new Set(ids).size, `${receiverNames[i]} printed an id twice`).toBe(ids.length);
      expect(lost(r), `${receiverNames[i]} reported a loss`).toEqual([]);
    }
  }, 60_000);

  it('a receiver cut off at the switch while a live sender sends is repaired once reconnected', async () => {
    const cut = 2;
    const piped = chat(3, ['--name', 'pip', '--json', '--wait', '15000']);
    await piped.until(started, START_MS, 'the piped sender to start');
    // Its first line proves all three receivers are in its stream before the cut.
    const first = 'pip before the cut';
    piped.child.stdin!.write(`${first}\n`);
    for (const [i, r] of receivers.entries())
      await r.until((l) => withText(l, first).length === 1, DELIVER_MS, `${receiverNames[i]}: '${first}'`);

    lan.setCut(cut, true);
    const during = Array.from({ length: PIPED_LINES }, (_, k) => `pip during the cut ${k + 1}`);
    for (const t of during) piped.child.stdin!.write(`${t}\n`);
    // The receivers still connected get them (repairs included) while the third cannot.
    for (const i of [0, 1])
      await receivers[i]!.until(
        (l) => during.every((t) => withText(l, t).length === 1),
        DELIVER_MS,
        `${receiverNames[i]} to get the lines sent during the cut`,
      );
    expect(during.some((t) => withText(receivers[cut]!, t).length > 0)).toBe(false);

    lan.setCut(cut, false);
    // The sender is alive: its announcements reveal the gap and the receiver NACKs it repaired.
    await receivers[cut]!.until(
      (l) => during.every((t) => withText(l, t).length === 1) || lost(l).length > 0,
      DELIVER_MS,
      `${receiverNames[cut]} to be repaired after reconnecting`,
    );
    expect(lost(receivers[cut]!), 'nothing reported lost: the sender could repair all').toEqual([]);
    for (const t of [first, ...during])
      for (const r of receivers) expect(withText(r, t), `'${t}'`).toHaveLength(1);

    // End of input: the sender exits once every line settled. If it declared the cut receiver
    // dead during the cut (about 1.1 s), it says so (exit 1 naming it as gone); never anyone else.
    piped.child.stdin!.end();
    const code = await piped.exited;
    const err = piped.stderr.join('');
    if (code !== 0) {
      expect(code).toBe(1);
      expect(err).toMatch(/not acknowledged by ruc \((gone|no ack)\)\s*$/m);
    }
    for (const [i, r] of receivers.entries()) {
      const ids = messages(r).map((m) => m.id);
      expect(new Set(ids).size, `${receiverNames[i]} printed an id twice`).toBe(ids.length);
    }
  }, 60_000);
});
