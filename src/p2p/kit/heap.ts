/**
 * A binary min-heap under a caller's order: the simulator's event queue (transport/sim.ts) and
 * reach's deadlines (reach.ts). Sifts move a hole instead of swapping pairs.
 */
export class MinHeap<T> {
  private readonly items: T[] = [];

  /** `before(x, y)`: x comes out first. */
  constructor(private readonly before: (x: T, y: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const a = this.items;
    let i = a.length;
    a.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p]!;
      if (!this.before(item, parent)) break;
      a[i] = parent;
      i = p;
    }
    a[i] = item;
  }

  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    const n = a.length;
    if (n > 0 && last !== undefined) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && this.before(a[r]!, a[l]!) ? r : l;
        if (!this.before(a[m]!, last)) break;
        a[i] = a[m]!;
        i = m;
      }
      a[i] = last;
    }
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }
}
