import type { AddressInfo, Server } from 'node:net';

/** Where a server listens once bound: port 0 becomes the real port, an IPv6 host is bracketed in the URL. */
export interface Bound {
  host: string;
  port: number;
  url: string;
}

/** Binds `server` to `host:port`; rejects with the bind error (EADDRINUSE and the like). */
export async function listenOn(server: Server, port: number, host: string, scheme: 'http' | 'https' = 'http'): Promise<Bound> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { host: addr.address, port: addr.port, url: `${scheme}://${h}:${addr.port}` };
}
