import { PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { UsageError } from '../cli/network.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import { networkSettings, startPeer } from '../cli/peer.js';
import { installMonitorModules, MonitorFeeds } from '../cli/monitor/feeds.js';
import { TABS } from '../cli/monitor/tabs/index.js';
import { FullScreen } from '../cli/monitor/terminal.js';

export default class Monitor extends PeerCommand {
  static override summary =
    'A live full-screen dashboard of the group: peers, chat, tasks, token, replicas, logs.';
  static override description =
    'Joins the group as an observer: it reads everything the peers advertise (membership, the election’s, replication’s and workers’ tags, clock statuses, the detached runs the coordinator announces) but never heartbeats, so it is never a member, never elected, never counted in a clock round or a replica ack. In a keyed group pass its --key-file, as every peer does. Tabs: 1 Peers, 2 Chat, 3 Tasks (the workers: slots, jobs held, exec allowed; the runs of peer task and peer run --detach announced since the monitor started), 4 Token, 5 Replicas, 6 Logs; a tab whose capability is not in this build says so. Keys: ←/→ or Tab to switch, 1-6 to jump, ↑/↓ PgUp/PgDn to scroll, q to quit; on the Chat tab, Enter writes a line to the group (the monitor sees chat from its start on: members send history only to members). Needs a terminal (for scripts: peer peers --json).';
  static override examples = [
    '<%= config.bin %> monitor',
    '<%= config.bin %> monitor --interface 127.0.0.1 --ttl 0 --port 47777',
    '<%= config.bin %> monitor --key-file group.key',
  ];
  static override flags = { ...networkFlags };

  async run(): Promise<void> {
    const { flags } = await this.parse(Monitor);
    if (!process.stdout.isTTY || !process.stdin.isTTY)
      throw new UsageError(
        'peer monitor needs a terminal on stdin and stdout; for scripts use peer peers --json',
      );
    const settings = networkSettings(flags, flags.name ?? 'monitor');
    const peer = await startPeer(settings, { observer: true, install: installMonitorModules });
    const feeds = new MonitorFeeds({
      node: peer.node,
      group: `${settings.group}:${settings.port}`,
      installed: peer.installed,
    });
    feeds.start();
    // Ink draws only the final frame when it believes it runs in CI (is-in-ci reads CI and
    // CONTINUOUS_INTEGRATION once, when first imported). The monitor runs only on a terminal
    // (checked above), where live frames are the point, so those variables must not reach it.
    delete process.env.CI;
    delete process.env.CONTINUOUS_INTEGRATION;
    // Ink and React take most of a second to load; importing them here keeps every other
    // command's start-up (oclif loads all command files when it has no manifest) free of them.
    const [{ default: React }, { render }, { MonitorApp }] = await Promise.all([
      import('react'),
      import('ink'),
      import('../cli/monitor/app.js'),
    ]);
    const screen = new FullScreen(process.stdout);
    let quit: (reason: string) => void = () => {};
    const done = new Promise<string>((resolve) => (quit = resolve));
    const onSignal = (sig: NodeJS.Signals) => quit(sig);
    const onCrash = (err: unknown) => quit(`error: ${err instanceof Error ? err.message : String(err)}`);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);
    screen.enter();
    const snapshot = () => feeds.input();
    const ink = render(
      React.createElement(MonitorApp, {
        tabs: TABS,
        snapshot,
        onQuit: () => quit('q'),
        onSend: (text: string) => feeds.say(text),
      }),
      {
        exitOnCtrlC: false,
        incrementalRendering: false,
        patchConsole: true,
      },
    );
    // Ink ends the app itself on an error thrown while rendering: restore the terminal then too.
    ink.waitUntilExit().then(
      () => quit('q'),
      (err: unknown) => onCrash(err),
    );
    let reason: string;
    try {
      reason = await done;
    } finally {
      ink.unmount();
      screen.leave();
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, onSignal);
      process.off('uncaughtException', onCrash);
      process.off('unhandledRejection', onCrash);
      feeds.stop();
      await peer.stop();
    }
    if (reason.startsWith('error: ')) {
      process.stderr.write(`peer monitor: ${escapeForTerminal(reason.slice(7))}\n`);
      process.exitCode = 1;
    }
    // stdin was put in raw, flowing mode by Ink: release it so the process can exit.
    process.stdin.pause();
  }
}
