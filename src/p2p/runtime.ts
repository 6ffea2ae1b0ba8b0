/**
 * Time, timers and randomness, injected so the same node runs in real time (here) or in virtual
 * time over the simulated network (transport/sim.ts). Protocol modules never see timers: the node
 * calls their tick(now) from the runtime's interval.
 */
export type Cancel = () => void;

export interface Runtime {
  /** Monotonic milliseconds: for timeouts and durations. */
  now(): number;
  /** Wall-clock milliseconds since the epoch, as this machine believes them: for display. */
  wall(): number;
  random(): number;
  every(ms: number, fn: () => void): Cancel;
  after(ms: number, fn: () => void): Cancel;
}

export const realRuntime: Runtime = {
  now: () => performance.now(),
  wall: () => Date.now(),
  random: () => Math.random(),
  every(ms, fn) {
    const h = setInterval(fn, ms);
    return () => clearInterval(h);
  },
  after(ms, fn) {
    const h = setTimeout(fn, ms);
    return () => clearTimeout(h);
  },
};
