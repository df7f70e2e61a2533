import express from 'express';
import { Agent } from 'node:http';
import { createProxyMiddleware } from 'http-proxy-middleware';

/**
 * Peer: express with http-proxy-middleware, and nothing else: no key check, no rate limit.
 * The one change from its README is a keep-alive agent: without it every request opens a new
 * upstream connection, which measures the loopback's TIME_WAIT churn rather than the proxy
 * (and nginx and Keygate keep their upstream connections too). Prints `ready` once listening.
 *
 *   peers/express-hpm.ts PORT UPSTREAM
 */
const [portArg, upstream] = process.argv.slice(2);
const app = express();
app.use(createProxyMiddleware({ target: upstream, agent: new Agent({ keepAlive: true }) }));
app.listen(Number(portArg), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGINT', () => process.exit(0));
