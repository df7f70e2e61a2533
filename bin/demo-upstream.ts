import { createServer, type Server } from 'node:http';

/**
 * A stand-in API for the README walk-through: answers every request with what it received,
 * so a newcomer can see the identity headers the gateway adds. Production configs leave
 * `demo_upstream` out.
 */
export function createDemoUpstream(): Server {
  return createServer((req, res) => {
    const seen: Record<string, string | string[] | undefined> = {};
    for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-')) seen[k] = v;
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ ok: true, method: req.method, path: req.url, headers: seen });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}
