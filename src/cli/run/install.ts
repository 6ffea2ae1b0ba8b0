/**
 * Installs the jobs protocol (src/p2p/jobs) on a node, over the reliable delivery it already has:
 * `peer run` installs it without an executor (it submits), `peer worker` with one (it runs jobs).
 * Every peer that stands in the election (`peer up`, `peer worker`) gives it the election and its
 * store of detached runs, so that whichever is elected keeps them (keeper.ts); a command that
 * only asks the keeper (`peer run --detach`, `--attach`) gives it the election alone.
 */
import type { PeerNode } from '../../p2p/node.js';
import type { ReliableDelivery } from '../../p2p/reliable/index.js';
import { Jobs, type JobsOptions } from '../../p2p/jobs/index.js';

export function installJobs(node: PeerNode, reliable: ReliableDelivery, opts: JobsOptions): Jobs {
  return node.install((ctx, n) => new Jobs(ctx, reliable, n.membership, opts));
}
