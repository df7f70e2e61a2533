import { createServer } from 'node:http';

// The API behind every target: a 2-byte body, keep-alive, as cheap as Node can answer.
const port = Number(process.argv[2]);
const body = Buffer.from('ok');
createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
  res.end(body);
})
  .listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
