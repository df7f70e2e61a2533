import { connect, type Socket } from 'node:net';

/** One HTTP/1.1 response as read off the wire. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: any;
}

/** A client connection that writes bytes exactly as given and keeps everything it receives. */
export interface RawConnection {
  socket: Socket;
  /** Everything received so far, as latin1 text. */
  readonly received: string;
  /** Resolves once the server closed the connection (or it failed), with everything received. */
  readonly closed: Promise<string>;
  write(text: string): void;
  /** Resolves once `predicate` holds for what was received; rejects when the connection closes first. */
  until(predicate: (received: string) => boolean): Promise<string>;
}

export function openRaw(url: string, options: { localAddress?: string } = {}): Promise<RawConnection> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ port: Number(u.port), host: u.hostname.replace(/^\[|\]$/g, ''), ...options });
    let received = '';
    const waiters = new Set<() => void>();
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      received += c;
      for (const w of waiters) w();
    });
    const closed = new Promise<string>((ok) => {
      socket.on('close', () => {
        for (const w of waiters) w();
        ok(received);
      });
    });
    socket.on('error', () => {});
    socket.once('connect', () =>
      resolve({
        socket,
        get received() {
          return received;
        },
        closed,
        write: (text) => void socket.write(text, 'latin1'),
        until(predicate) {
          return new Promise((ok, fail) => {
            const check = () => {
              if (predicate(received)) {
                waiters.delete(check);
                ok(received);
              } else if (socket.destroyed || socket.readableEnded) {
                waiters.delete(check);
                fail(new Error(`connection closed before the expected answer; got: ${received.slice(0, 300)}`));
              }
            };
            waiters.add(check);
            check();
          });
        },
      }),
    );
    socket.once('error', reject);
  });
}

/** Writes `text` on a new connection and resolves with everything received once the server closes it. */
export async function exchange(url: string, text: string): Promise<string> {
  const c = await openRaw(url);
  c.write(text);
  return c.closed;
}

/** Splits what a connection received into its responses (bodies framed by Content-Length). */
export function responses(text: string): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end === -1) break;
    const [statusLine = '', ...lines] = text.slice(at, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
    const status = Number(statusLine.split(' ')[1]);
    let body = '';
    let next = end + 4;
    if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      for (;;) {
        const lineEnd = text.indexOf('\r\n', next);
        if (lineEnd === -1) break;
        const size = Number.parseInt(text.slice(next, lineEnd), 16);
        next = lineEnd + 2;
        if (!(size > 0)) {
          next += 2;
          break;
        }
        body += text.slice(next, next + size);
        next += size + 2;
      }
    } else {
      const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : status === 100 ? 0 : text.length - next;
      body = text.slice(next, next + length);
      next += length;
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
    out.push({ status, headers, body, json });
    at = next;
  }
  return out;
}

/** Open file descriptors of this process (Linux). */
export async function openDescriptors(): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir('/proc/self/fd')).length;
}
