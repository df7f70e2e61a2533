import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

/**
 * Peer: fastify with @fastify/http-proxy, as its README sets it up (undici underneath, with
 * its keep-alive pool to the upstream), and nothing else: no key check, no rate limit.
 * Prints `ready` once listening.
 *
 *   peers/fastify.ts PORT UPSTREAM
 */
const [portArg, upstream] = process.argv.slice(2);
const app = Fastify({ logger: false });
await app.register(proxy, { upstream: upstream!, prefix: '/' });
await app.listen({ port: Number(portArg), host: '127.0.0.1' });
process.stdout.write('ready\n');
process.on('SIGINT', () => process.exit(0));
