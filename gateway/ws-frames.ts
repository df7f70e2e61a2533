import { randomBytes } from 'node:crypto';

/**
 * Where a stream of WebSocket frames (RFC 6455 §5.2) stands: inside a frame, or between two.
 * It reads each frame's header (2 to 14 bytes) and skips its payload by count, so following a
 * stream costs a few operations per frame, whatever the frames carry. A control frame may be
 * sent between any two frames, even amid the fragments of a message (§5.4): between two
 * frames is where the gateway can put a close frame of its own without breaking the stream.
 */
export class FrameCursor {
  /** Payload bytes of the current frame still to come. */
  #left = 0;
  /** The current frame's header, as far as it has come. */
  readonly #head = Buffer.alloc(14);
  #headLength = 0;

  /** True between two frames. */
  get atBoundary(): boolean {
    return this.#left === 0 && this.#headLength === 0;
  }

  /**
   * Follows `chunk`, the next bytes of the stream. With `stop` set it stops at the first
   * frame boundary and returns its offset in `chunk` (0 when the stream stands at one
   * already); otherwise, or when no frame ends in it, it returns `chunk.length`.
   */
  advance(chunk: Buffer, stop: boolean): number {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.#left > 0) {
        const take = Math.min(this.#left, n - i);
        this.#left -= take;
        i += take;
        continue;
      }
      if (stop && this.#headLength === 0) return i;
      this.#head[this.#headLength++] = chunk[i++]!;
      if (this.#headLength >= 2 && this.#headLength === headerLength(this.#head)) {
        this.#left = payloadLength(this.#head);
        this.#headLength = 0;
      }
    }
    return n;
  }
}

/** A frame header's length, from its second byte: the payload length's extension and the mask key. */
function headerLength(head: Buffer): number {
  const b = head[1]!;
  const len = b & 0x7f;
  return 2 + (len === 126 ? 2 : len === 127 ? 8 : 0) + (b & 0x80 ? 4 : 0);
}

function payloadLength(head: Buffer): number {
  const len = head[1]! & 0x7f;
  if (len < 126) return len;
  if (len === 126) return head.readUInt16BE(2);
  // Up to 2^63 by the RFC; a double holds every length a socket can carry exactly.
  return head.readUInt32BE(2) * 2 ** 32 + head.readUInt32BE(6);
}

/**
 * A close frame (RFC 6455 §5.5.1) with a status code and a short UTF-8 reason (at most 123
 * bytes, cut otherwise). Frames a client sends must be masked (§5.3); a server's must not.
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, 123);
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const mask = randomBytes(4);
  for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]);
}
