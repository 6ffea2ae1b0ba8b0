import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Flags } from '@oclif/core';
import chalk from 'chalk';
import { PeerCommand } from '../cli/base.js';
import { DemoContext, seconds } from '../demo/context.js';
import { SCENES } from '../demo/scenes/index.js';
import { UsageError } from '../cli/network.js';

export default class Demo extends PeerCommand {
  static override summary = 'Run a small cluster on loopback and narrate what happens.';
  static override description =
    'Starts real peer processes on 127.0.0.1 with TTL 0 (nothing leaves this machine), on a port of their own, and plays one scene per capability. Exits 0 when every scene did what it shows.';
  static override examples = ['<%= config.bin %> demo', '<%= config.bin %> demo --scene membership'];
  static override flags = {
    port: Flags.integer({
      summary: 'Group port for the demo (default: a random free-looking one).',
      min: 1024,
      max: 65535,
    }),
    scene: Flags.string({ summary: 'Play only the scenes whose title contains this text.' }),
    keep: Flags.boolean({ summary: 'Keep the demo data dir and replicas afterwards.', default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Demo);
    const scenes = SCENES.filter(
      (s) => !flags.scene || s.title.toLowerCase().includes(flags.scene.toLowerCase()),
    );
    if (scenes.length === 0)
      throw new UsageError(
        `no scene matches '${flags.scene}'; scenes: ${SCENES.map((s) => s.title).join(', ')}`,
      );
    const port = flags.port ?? 40000 + Math.floor(Math.random() * 20000);
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-demo-'));
    const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/run.js');
    const ctx = new DemoContext(bin, port, path.join(scratch, 'data'), path.join(scratch, 'replicas'), (l) =>
      this.log(l),
    );
    this.log(chalk.bold(`peer demo: real peers on loopback (127.0.0.1, TTL 0, group port ${port})`));
    const started = Date.now();
    try {
      for (const [i, scene] of scenes.entries()) {
        this.log(`\n${chalk.bold(`${i + 1}. ${scene.title}`)} ${chalk.gray(`— ${scene.about}`)}`);
        await scene.run(ctx);
      }
    } finally {
      await ctx.stopAll();
      if (!flags.keep) fs.rmSync(scratch, { recursive: true, force: true });
    }
    this.log(
      `\n${chalk.green.bold('demo complete')} in ${seconds(Date.now() - started)}.${flags.keep ? ` Files kept in ${scratch}.` : ''}`,
    );
    // Where to go next: the same loopback group, live, in the dashboard.
    const loopback = `--interface 127.0.0.1 --ttl 0 --port ${port}`;
    this.log(
      `\nWatch a group live: start a few peers, one per terminal (${chalk.cyan(`${this.config.bin} up ${loopback} --name alice`)}, then --name bob), and run:\n  ${chalk.cyan(`${this.config.bin} monitor ${loopback}`)}`,
    );
  }
}
