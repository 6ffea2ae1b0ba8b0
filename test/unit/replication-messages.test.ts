import { describe, expect, it } from 'vitest';
import { MESSAGES, readBody, wireBody, type MessageType } from '../../src/p2p/replication/messages.js';
import { PROTOCOL_VERSION, type Envelope } from '../../src/p2p/wire.js';

const ID = '0123456789abcdef';
const OTHER = 'fedcba9876543210';
const B64 = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]).toString('base64');

/** One body of each type, as the protocol has always put it on the wire (key order included). */
const WIRE: Record<MessageType, string> = {
  'rp.app': `{"e":["${ID}",3,17,"hello\\tworld"]}`,
  'rp.ack': `{"o":"${ID}","s":3,"k":["${OTHER}"]}`,
  'rp.nak': `{"o":"${ID}","s":3,"r":"full"}`,
  'rp.tq': `{"q":7,"ln":1,"lv":2,"p":[0,5]}`,
  'rp.tr': `{"q":7,"h":"${B64}"}`,
  'rp.iq': `{"q":8,"z":12345,"m":48,"f":24,"n":24}`,
  'rp.ir': `{"q":8,"c":"${B64}"}`,
  'rp.get': `{"q":9,"k":"${B64}"}`,
  'rp.ent': `{"q":9,"e":[["${ID}",1,2,"a"],["${OTHER}",4,5,"b"]]}`,
  'rp.put': `{"q":10,"e":[["${ID}",1,2,"a"]]}`,
  'rp.got': `{"q":10}`,
  'rp.rnd': `{"r":99}`,
  'rp.st': `{"r":99,"n":4,"h":"00112233aabbccdd","b":2,"d":"","k":["${ID}","${OTHER}"]}`,
  'rp.fin': `{"r":99,"h":"00112233aabbccdd"}`,
};

function envelope(type: string, b: unknown): Envelope {
  return { v: PROTOCOL_VERSION, t: type, i: OTHER, n: 'h1', c: 1, s: 1, l: 1, b };
}

describe('replication messages', () => {
  it('declares exactly the types it maps, and each sample passes its schema', () => {
    expect(Object.keys(MESSAGES).sort()).toEqual(Object.keys(WIRE).sort());
    for (const [type, json] of Object.entries(WIRE))
      expect(MESSAGES[type as MessageType](JSON.parse(json))).toBe(true);
  });

  it('maps wire names to domain names and back to the same bytes', () => {
    for (const type of Object.keys(WIRE) as MessageType[]) {
      const body = readBody(type, envelope(type, JSON.parse(WIRE[type])));
      expect(JSON.stringify(wireBody(type, body)), type).toBe(WIRE[type]);
    }
  });

  it('gives the roles domain names', () => {
    const st = readBody('rp.st', envelope('rp.st', JSON.parse(WIRE['rp.st'])));
    expect(st).toEqual({
      round: 99,
      entries: 4,
      digest: '00112233aabbccdd',
      before: 2,
      sha256: '',
      holders: [ID, OTHER],
    });
    const app = readBody('rp.app', envelope('rp.app', JSON.parse(WIRE['rp.app'])));
    expect(app.entry).toEqual({ origin: ID, seq: 3, lamport: 17, text: 'hello\tworld' });
  });
});
