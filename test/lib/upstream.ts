import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  bodyBytes: number;
}

export interface Upstream {
  url: string;
  port: number;
  /** Every request the upstream received, in order. */
  seen: Seen[];
  close(): Promise<void>;
}

/**
 * A real HTTP server on loopback standing in for the API behind the gateway.
 *   …/slow…        never answers
 *   /bytes/N       streams N bytes of body, 64 KiB at a time, honouring backpressure
 *   /hop           answers with hop-by-hop headers that must not reach the client
 *   /ws            a WebSocket echo
 *   anything else  200 with JSON describing what was received (body bytes counted, not kept)
 */
export async function startUpstream(): Promise<Upstream> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const entry: Seen = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: 0 };
    seen.push(entry);
    if (req.url?.includes('/slow')) return;
    const bytes = /\/bytes\/(\d+)$/.exec(req.url ?? '');
    if (bytes) {
      let left = Number(bytes[1]);
      const chunk = Buffer.alloc(64 * 1024, 97);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left });
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    req.on('data', (c: Buffer) => (entry.bodyBytes += c.length));
    req.on('end', () => {
      if (req.url?.endsWith('/hop')) {
        res.writeHead(200, [
          ['Content-Type', 'text/plain'],
          ['Connection', 'keep-alive, X-Secret-Hop'],
          ['X-Secret-Hop', 'must-not-pass'],
          ['Keep-Alive', 'timeout=5'],
          ['Proxy-Connection', 'keep-alive'],
          ['Upgrade', 'h2c'],
          ['X-End-To-End', 'passes'],
          ['Set-Cookie', 'a=1'],
          ['Set-Cookie', 'b=2'],
        ].flat());
        return void res.end('hop');
      }
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes: entry.bodyBytes });
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
      res.end(body);
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: 0 });
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, binary) => ws.send(data, { binary }));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    async close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}
