#!/usr/bin/env node
/**
 * Checks a shared resource's log written by `peer token-ring --exec`: one line per event,
 *   enter TOKEN [anything...]
 *   exit TOKEN [anything...]
 * and verifies what a fenced resource must see: critical sections never overlap (every enter is
 * followed by the exit of the same token before the next enter) and fencing tokens strictly
 * increase from one section to the next.
 *
 * Usage: node scripts/check-fencing.mjs FILE [--allow-abandoned]
 *   --allow-abandoned  an enter with no exit (its holder was killed mid-section) may be followed
 *                      by the enter of a higher token: the resource fences the dead holder out.
 * Exit codes: 0 good, 1 a violation (each printed on its own line), 2 bad usage or unreadable file.
 */
import fs from 'node:fs';

const args = process.argv.slice(2);
const allowAbandoned = args.includes('--allow-abandoned');
const files = args.filter((a) => !a.startsWith('--'));
const unknown = args.filter((a) => a.startsWith('--') && a !== '--allow-abandoned');
if (files.length !== 1 || unknown.length > 0) {
  process.stderr.write('usage: node scripts/check-fencing.mjs FILE [--allow-abandoned]\n');
  process.exit(2);
}

let text;
try {
  text = fs.readFileSync(files[0], 'utf8');
} catch (err) {
  process.stderr.write(`check-fencing: cannot read ${files[0]} (${err.code ?? err.message})\n`);
  process.exit(2);
}

const problems = [];
let open = null; // { token, line }
let last = 0;
let sections = 0;
let abandoned = 0;
const lines = text.split('\n');
lines.forEach((raw, i) => {
  const n = i + 1;
  const line = raw.trim();
  if (line === '') return;
  const m = /^(enter|exit)\s+(\d+)(\s|$)/.exec(line);
  if (!m) {
    problems.push(`line ${n}: not "enter TOKEN" or "exit TOKEN": ${JSON.stringify(line.slice(0, 80))}`);
    return;
  }
  const [, what, tokenText] = m;
  const token = Number(tokenText);
  if (!Number.isSafeInteger(token)) {
    problems.push(`line ${n}: token ${tokenText} is not a safe integer`);
    return;
  }
  if (what === 'enter') {
    if (open) {
      if (allowAbandoned && token > open.token) abandoned++;
      else
        problems.push(
          `line ${n}: token ${token} entered while token ${open.token} (line ${open.line}) was inside`,
        );
    }
    if (token <= last) problems.push(`line ${n}: token ${token} entered after token ${last}: not increasing`);
    last = Math.max(last, token);
    open = { token, line: n };
    sections++;
  } else {
    if (!open) problems.push(`line ${n}: exit of token ${token} with nobody inside`);
    else if (open.token !== token)
      problems.push(
        `line ${n}: exit of token ${token} while token ${open.token} (line ${open.line}) is inside`,
      );
    open = null;
  }
});
if (open && !allowAbandoned) problems.push(`line ${open.line}: token ${open.token} entered and never exited`);

for (const p of problems) process.stdout.write(`${p}\n`);
const summary = `${sections} critical sections, fencing tokens up to ${last}${abandoned ? `, ${abandoned} abandoned by a killed holder` : ''}`;
if (problems.length > 0) {
  process.stdout.write(`FAIL: ${problems.length} problem(s) in ${summary}\n`);
  process.exit(1);
}
process.stdout.write(`OK: ${summary}, no overlap, strictly increasing\n`);
