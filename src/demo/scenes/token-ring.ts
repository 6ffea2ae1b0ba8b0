import fs from 'node:fs';
import path from 'node:path';
import { descendants, type ChildLines } from '../../cli/child.js';
import { seconds, type DemoContext, type DemoScene } from '../context.js';

const NAMES = ['tia', 'tom', 'tus'];
/** The peer killed in the middle of its turn. */
const VICTIM = 'tom';
/** Turns seen before the kill, and survivor turns after it, before the scene moves on. */
const TURNS_BEFORE = 6;
const TURNS_AFTER = 4;
/** How long each turn "uses the resource". */
const TURN_S = 0.2;
/** Node start-up and the first token (made after a short silence), on a busy machine. */
const FIRST_TURN_MS = 20_000;
const TURNS_MS = 15_000;

function fail(what: string): never {
  throw new Error(`token ring scene: ${what}`);
}

interface Turn {
  token: number;
  holder: string;
  exited: boolean;
}

/** Reads the shared file as turns; the checks of scripts/check-fencing.mjs --allow-abandoned. */
function turnsOf(file: string): { turns: Turn[]; problems: string[] } {
  const turns: Turn[] = [];
  const problems: string[] = [];
  let open: Turn | null = null;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^(enter|exit) (\d+) (\S+)$/.exec(line.trim());
    if (!m) continue;
    const token = Number(m[2]);
    if (m[1] === 'enter') {
      const last = turns[turns.length - 1];
      if (last && token <= last.token) problems.push(`token ${token} after ${last.token}: not increasing`);
      // An open turn may only be followed by a higher token if its holder died (fenced out).
      if (open && open.holder !== VICTIM)
        problems.push(`token ${token} entered while ${open.token} was inside`);
      open = { token, holder: m[3]!, exited: false };
      turns.push(open);
    } else {
      if (!open || open.token !== token) problems.push(`exit ${token} does not close the open turn`);
      else open.exited = true;
      open = null;
    }
  }
  return { turns, problems };
}

export const tokenRingScene: DemoScene = {
  title: 'Token ring',
  about:
    'One token goes round three processes that take turns on a shared file, each turn with a fencing token that only rises; the holder is killed mid-turn and the others make a new token.',
  async run(ctx: DemoContext) {
    // The scratch dir holding the data dir: its name (from mkdtemp) has no quotes.
    const shared = path.join(path.dirname(ctx.dataDir), 'token-shared.log');
    fs.writeFileSync(shared, '');
    // Turns start once all three see each other: a peer started well before the others would
    // otherwise take its turns alone, and peers that never met it would start again at token 1.
    const gate = path.join(path.dirname(ctx.dataDir), 'token-gate');
    const cmd =
      `while [ ! -e '${gate}' ]; do sleep 0.05; done; ` +
      `echo "enter $PEER_FENCING_TOKEN $PEER_TOKEN_HOLDER" >> '${shared}'; sleep ${TURN_S}; ` +
      `echo "exit $PEER_FENCING_TOKEN $PEER_TOKEN_HOLDER" >> '${shared}'`;
    ctx.step(
      `starting ${NAMES.join(', ')}: peer token-ring --exec '<append enter/exit $PEER_FENCING_TOKEN to a shared file>'`,
    );
    const peers = new Map<string, ChildLines>(
      NAMES.map((n) => [n, ctx.start(['token-ring', '--name', n, '--exec', cmd, '--json', ...ctx.network])]),
    );
    for (const [n, p] of peers)
      await p.until(
        (l) => NAMES.every((o) => o === n || l.json().some((e) => e.event === 'join' && e.peer === o)),
        FIRST_TURN_MS,
        `${n} to see the others`,
      );
    fs.writeFileSync(gate, '');
    ctx.ok('the three see each other; turns begin');
    const read = () => turnsOf(shared);
    const waitTurns = async (pred: (t: Turn[]) => boolean, ms: number, what: string) => {
      await peers.get(NAMES[0]!)!.until(() => pred(read().turns), ms, what);
    };
    await waitTurns((t) => t.length >= TURNS_BEFORE, FIRST_TURN_MS, `${TURNS_BEFORE} turns`);
    const before = read().turns.slice(0, TURNS_BEFORE);
    ctx.ok(`turns so far: ${before.map((t) => `${t.holder} ${t.token}`).join(', ')}`);
    ctx.note('each turn needs the token and a lease from a majority; its fencing token is the generation');

    ctx.step(`kill -9 ${VICTIM} (and the command it runs) while it is inside its turn`);
    const victim = peers.get(VICTIM)!;
    const inside = () => {
      const t = read().turns;
      const last = t[t.length - 1];
      return last && last.holder === VICTIM && !last.exited ? last : undefined;
    };
    await waitTurns(() => !!inside(), TURNS_MS, `${VICTIM} to be inside a turn`);
    const killed = inside()!;
    const pid = victim.child.pid!;
    const kids = descendants(pid);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    for (const k of kids) {
      try {
        process.kill(k, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await victim.exited;
    const survivors = NAMES.filter((n) => n !== VICTIM).map((n) => peers.get(n)!);
    const regenerated = () =>
      survivors
        .flatMap((s) => s.json())
        .filter((e) => e.event === 'regenerated' && Date.parse(e.at as string) >= killedAt)
        .sort((a, b) => Date.parse(a.at as string) - Date.parse(b.at as string))[0];
    await survivors[0]!.until(() => !!regenerated(), 10_000, 'a new token');
    const regen = regenerated()!;
    ctx.ok(
      `${regen.name as string} made a new token (generation ${regen.generation as number}, epoch ${regen.epoch as number}) ${seconds(Date.parse(regen.at as string) - killedAt)} after the kill, with a majority's consent`,
    );
    const after = () => read().turns.filter((t) => t.token > killed.token);
    await waitTurns(() => after().length >= TURNS_AFTER, TURNS_MS, 'turns after the kill');
    ctx.ok(
      `${VICTIM}'s turn ${killed.token} never exited; then ${after()
        .slice(0, TURNS_AFTER)
        .map((t) => `${t.holder} ${t.token}`)
        .join(', ')}`,
    );

    for (const s of survivors) s.child.kill('SIGTERM');
    const codes = await Promise.all(survivors.map((s) => s.exited));
    if (codes.some((c) => c !== 0)) fail(`a survivor exited with ${codes.join(', ')}`);
    const { turns, problems } = read();
    if (problems.length > 0) fail(problems.join('; '));
    const abandoned = turns.filter((t) => !t.exited);
    if (abandoned.length !== 1 || abandoned[0]!.token !== killed.token)
      fail(`expected only turn ${killed.token} without an exit`);
    ctx.ok(
      `the file holds ${turns.length} turns, fencing tokens strictly increasing (${turns[0]!.token} to ${turns[turns.length - 1]!.token}), no two overlapping; only the killed turn has no exit`,
    );
    ctx.note(
      'a real resource remembers the highest fencing token it accepted and refuses lower ones (scripts/check-fencing.mjs checks a log the same way)',
    );
  },
};
