import t from 'tap';
import { closeFrame, FrameCursor } from '../gateway/ws-frames.js';

// FrameCursor follows WebSocket frames through any split into chunks, so that a close frame
// can be put between two frames (gateway/tunnels.ts).

/** A frame header and `len` payload bytes; masked as a client's are. */
function frame(len: number, masked: boolean): Buffer {
  const ext = len < 126 ? [len] : len < 65_536 ? [126, len >> 8, len & 0xff] : [127, 0, 0, 0, 0, (len >>> 24) & 0xff, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff];
  ext[0] = ext[0]! | (masked ? 0x80 : 0);
  return Buffer.concat([Buffer.from([0x82, ...ext]), masked ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0), Buffer.alloc(len, 7)]);
}

t.test('boundaries are found whatever the chunks and lengths', async (t) => {
  const frames = [frame(0, false), frame(5, true), frame(125, false), frame(126, true), frame(70_000, false), frame(3, true)];
  const stream = Buffer.concat(frames);
  const ends = new Set<number>();
  let at = 0;
  for (const f of frames) ends.add((at += f.length));
  for (const size of [1, 2, 3, 7, 64, 1000, stream.length]) {
    const cursor = new FrameCursor();
    const seen = new Set<number>();
    for (let offset = 0; offset < stream.length; offset += size) {
      let pending = stream.subarray(offset, Math.min(stream.length, offset + size));
      let pos = offset;
      for (;;) {
        const stop = cursor.advance(pending, true);
        pos += stop;
        if (stop === pending.length) break;
        // At a boundary: noted, then one byte of the next frame's header taken, and on.
        seen.add(pos);
        cursor.advance(pending.subarray(stop, stop + 1), false);
        pos += 1;
        pending = pending.subarray(stop + 1);
      }
      if (cursor.atBoundary) seen.add(pos);
    }
    seen.delete(0);
    t.same(seen, ends, `chunks of ${size}`);
  }
});

t.test('close frames: unmasked to a client, masked to a server', async (t) => {
  const toClient = closeFrame(1008, 'API key revoked.', false);
  t.same([...toClient.subarray(0, 4)], [0x88, 18, 0x03, 0xf0], 'FIN + close, length, code 1008');
  t.equal(toClient.subarray(4).toString(), 'API key revoked.');
  const toServer = closeFrame(1008, 'API key revoked.', true);
  t.equal(toServer[1], 0x80 | 18, 'the mask bit is set');
  const mask = toServer.subarray(2, 6);
  const payload = Buffer.from(toServer.subarray(6).map((b, i) => b ^ mask[i & 3]!));
  t.equal(payload.readUInt16BE(0), 1008);
  t.equal(payload.subarray(2).toString(), 'API key revoked.');
  const cursor = new FrameCursor();
  t.equal(cursor.advance(Buffer.concat([toServer, toClient]), false), toServer.length + toClient.length);
  t.ok(cursor.atBoundary, 'both followed to their end');
});
