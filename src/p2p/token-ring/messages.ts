/**
 * The token ring's messages, declared once with the message kit (kit/message.ts), and the bounds of
 * what they carry. Field order is the order on the wire; wire names are part of the protocol.
 */
import { f, message, messages, type Body } from '../kit/message.js';

/** Quorum set carried in messages: 32 ids x 19 bytes keeps a pass well under the datagram limit. */
export const RING_CONFIG_MAX = 32;
/** Branch ids are random 32-bit numbers. */
export const BRANCH_MAX = 0xffffffff;
/**
 * Largest step an epoch from another peer may take above the newest we know (bounds.ts). Epochs
 * rise only by regenerations a majority confirmed, at most about one per loss timeout, so a peer
 * that slept through months of churn is still well within it. Further ahead is a forged or corrupt
 * message: adopted, its epoch would supersede every real token, and near the end of the safe range
 * the next claim (+1) would be an epoch every decoder refuses, stopping the ring for good.
 */
export const EPOCH_STEP_MAX = 2 ** 24;
/**
 * Largest step a generation from another peer may take above the highest we know. Gens rise at
 * every pass (a few dozen a second at most), and a restarted peer knows only the gen saved at the
 * last epoch change, so the step covers years of passing; a forger must still send some two
 * million messages to push the generations to COUNTER_MAX, where new tokens would no longer be adopted.
 */
export const GEN_STEP_MAX = 2 ** 32;

const EPOCH = f.uint().wire('e');
const GENERATION = f.uint().wire('g');
const QUORUM_SET = f.array(f.peerId(), RING_CONFIG_MAX);
/** A token (epoch, gen, branch, quorum set) handed to `to` in its life `toIncarnation`. */
export const PASS = message('tok.pass', {
  epoch: EPOCH,
  gen: GENERATION,
  branch: f.uint(BRANCH_MAX).wire('br'),
  cfg: QUORUM_SET,
  to: f.peerId(),
  toIncarnation: f.uint().wire('ti'),
});
export const PASS_ACK = message('tok.pack', { epoch: EPOCH, gen: GENERATION });
export const BEAT = message('tok.beat', { epoch: EPOCH, gen: GENERATION, cfg: QUORUM_SET });
export const LEASE = message('tok.lease', {
  epoch: EPOCH,
  gen: GENERATION,
  branch: f.uint(BRANCH_MAX).wire('br'),
  round: f.uint().wire('r'),
});
export const LEASE_ACK = message('tok.lack', { epoch: EPOCH, gen: GENERATION, round: f.uint().wire('r') });
/** A refused lease, with the newest token the refuser knows. */
export const LEASE_NAK = message('tok.lnak', { epoch: EPOCH, gen: GENERATION });
/** A claim of `epoch` from the quorum set of epoch `base`, by the holder of the token `token*` (0: none). */
export const CLAIM = message('tok.claim', {
  epoch: EPOCH,
  base: f.uint().wire('b'),
  tokenEpoch: f.uint().wire('te'),
  tokenGen: f.uint().wire('tg'),
  tokenBranch: f.uint(BRANCH_MAX).wire('tb'),
});
/** The answer to the claim of `epoch`, with what the confirmer knows: promise, newest epoch and set, highest gen. */
export const CONF = message('tok.conf', {
  epoch: EPOCH,
  ok: f.bool(),
  promised: f.uint().wire('p'),
  knownEpoch: f.uint().wire('ke'),
  knownCfg: QUORUM_SET.wire('kc'),
  maxGen: GENERATION,
});
export const MESSAGES = messages(PASS, PASS_ACK, BEAT, LEASE, LEASE_ACK, LEASE_NAK, CLAIM, CONF);
export type ClaimBody = Body<typeof CLAIM>;
