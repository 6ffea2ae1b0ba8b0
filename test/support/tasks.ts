/**
 * Test support for the tasks protocol: an executor in virtual time (the same ops, run at once, with
 * their completion delayed as a thread would take) and a coordinator view that a test switches by
 * hand, for tests that must not depend on the election.
 */
import type { PeerId } from '../../src/p2p/wire.js';
import {
  runTask,
  type CoordinatorView,
  type TaskExecutor,
  type TaskSpec,
  type Tasks,
} from '../../src/p2p/tasks/index.js';
import type { VirtualRuntime } from '../../src/p2p/transport/sim.js';

export class SimExecutor implements TaskExecutor {
  private running = 0;
  private readonly waiting: TaskSpec[] = [];
  /** Every task this executor started, by id (a task may run on two workers: at least once). */
  readonly started: string[] = [];

  constructor(
    readonly capacity: number,
    private readonly rt: VirtualRuntime,
    private readonly durationMs: (t: TaskSpec) => number,
    /** The protocol instance to report to, while its peer lives; null once it crashed. */
    private readonly target: () => Tasks | null,
  ) {}

  run(task: TaskSpec): void {
    this.waiting.push(task);
    this.pump();
  }

  private pump(): void {
    while (this.running < this.capacity && this.waiting.length > 0) {
      const t = this.waiting.shift()!;
      this.running++;
      this.started.push(t.id);
      this.rt.schedule(this.durationMs(t), () => {
        this.running--;
        const tasks = this.target();
        if (!tasks) return; // the peer crashed: its threads died with it
        tasks.complete(t.id, runTask(t.op, t.args));
        this.pump();
      });
    }
  }
}

/** A coordinator chosen by the test: every peer agrees at once. */
export class FakeElection {
  coordinator: PeerId | null = null;
  term = 1;

  viewFor(self: () => PeerId): CoordinatorView {
    return {
      coordinator: () => this.coordinator,
      isCoordinator: () => this.coordinator === self(),
      term: () => this.term,
    };
  }

  elect(id: PeerId): void {
    this.coordinator = id;
    this.term++;
  }
}
