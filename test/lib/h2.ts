import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** One HTTP/2 request on `session`, the body read whole. */
export function h2Call(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body?: string | Buffer,
): Promise<{ status: number; headers: IncomingHttpHeaders; text: string; body: any }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let head: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (head = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      resolve({ status: Number(head[':status']), headers: head, text, body: parsed });
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/** A node:http2 client session over TLS, trusting `ca`, once the server's SETTINGS arrived. */
export function h2Session(url: string, ca: Buffer): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = h2connect(url, { ca, servername: 'localhost' });
    session.once('remoteSettings', () => resolve(session));
    session.once('error', reject);
  });
}

/*
 * Raw HTTP/2 frames (RFC 9113 §4.1), for the abuse patterns node:http2's client will not send.
 */
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK literal header field without indexing, new name (RFC 7541 §6.2.2); short strings only. */
export function literal(name: string, value: string): Buffer {
  return Buffer.from([0x00, name.length, ...Buffer.from(name, "latin1"), value.length, ...Buffer.from(value, "latin1")]);
}

/**
 * `:method GET`, `:scheme https` from HPACK's static table, `:authority`, `:path` (`/` unless
 * given) and other fields as literals; names and values under 127 bytes.
 */
export function requestBlock(path = '/', fields: Record<string, string> = {}): Buffer {
  const authority = 'localhost';
  const bytes = [0x82, 0x87, 0x01, authority.length, ...Buffer.from(authority, 'latin1'), 0x04, path.length, ...Buffer.from(path, 'latin1')];
  for (const [name, value] of Object.entries(fields)) bytes.push(...literal(name, value));
  return Buffer.from(bytes);
}

/** A TLS connection that asked for h2 by ALPN, with the client preface and an empty SETTINGS sent. */
export function rawH2(port: number, ca: Buffer): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      if (socket.alpnProtocol !== 'h2') return reject(new Error(`ALPN chose ${String(socket.alpnProtocol)}`));
      socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
      // The server's limits hold once its SETTINGS are acknowledged (RFC 9113 §6.5.3).
      socket.once('data', (d: Buffer) => {
        if (d[3] !== FRAME.SETTINGS) return reject(new Error(`first frame of type ${d[3]}`));
        socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        resolve(socket);
      });
    });
    socket.once('error', reject);
  });
}

export interface FrameLog {
  types: number[];
  /** The error code of the first GOAWAY the server sent, or null. */
  goaway: number | null;
  /** The error codes of the RST_STREAMs the server sent. */
  resets: number[];
  /** Resolves once the connection closed. */
  closed: Promise<void>;
}

/** What the server sends on `socket`, frame by frame, from now until it closes. */
export function watchFrames(socket: TLSSocket): FrameLog {
  let buf = Buffer.alloc(0);
  let closed!: () => void;
  const log: FrameLog = { types: [], goaway: null, resets: [], closed: new Promise((r) => (closed = r)) };
  if (socket.destroyed) closed();
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3]!;
      log.types.push(type);
      if (type === FRAME.GOAWAY && log.goaway === null) log.goaway = buf.readUInt32BE(9 + 4);
      if (type === FRAME.RST_STREAM) log.resets.push(buf.readUInt32BE(9));
      buf = buf.subarray(9 + len);
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => closed());
  return log;
}
