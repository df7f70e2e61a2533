import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import type { PeerCertificate, SecureVersion } from 'node:tls';

export interface TlsCallOptions {
  ca: Buffer;
  servername?: string;
  cert?: Buffer;
  key?: Buffer;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  maxVersion?: SecureVersion;
}

export interface TlsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: any;
  text: string;
  /** The certificate the server presented. */
  peer: PeerCertificate;
}

/** One HTTP/1.1 request over a new TLS connection (no agent), the body read whole. */
export function tlsCall(url: string, options: TlsCallOptions): Promise<TlsResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        headers: options.headers,
        ca: options.ca,
        servername: options.servername ?? 'localhost',
        cert: options.cert,
        key: options.key,
        maxVersion: options.maxVersion,
        agent: false,
      },
      (res) => {
        const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode!, headers: res.headers, body, text, peer });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
