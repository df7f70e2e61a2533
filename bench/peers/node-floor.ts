import { createServer } from 'node:http';
import { Pool } from 'undici';

/**
 * Not a peer but a floor: the least a Node proxy can do per request, the forwarding measured
 * fastest on this kind of machine (undici `Pool.stream`) and nothing else. The
 * client's parsed headers go upstream as they are and the upstream's come back as they are:
 * no hop-by-hop headers removed, no forwarding headers, no request id, no error answer. It
 * is not a correct proxy; it shows what Node's HTTP server and client cost before any
 * gateway work. Prints `ready` once listening.
 *
 *   peers/node-floor.ts PORT UPSTREAM
 */
const [portArg, upstream] = process.argv.slice(2);
const pool = new Pool(upstream!, { connections: 128 });
createServer((req, res) => {
  pool.stream(
    { path: req.url!, method: 'GET', headers: req.headers, opaque: res },
    ({ statusCode, headers, opaque }) => {
      opaque.writeHead(statusCode, headers as Record<string, string>);
      return opaque;
    },
    (err) => {
      if (err) res.destroy();
    },
  );
}).listen(Number(portArg), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGINT', () => process.exit(0));
