#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm install` through the prepare script).
// The admin-API commands (`keygate keys …`, docs/cli.md) load only the client, not the servers.
import { isClientCommand } from '../dist/bin/client/nouns.js';

const argv = process.argv.slice(2);
const run = isClientCommand(argv[0]) ? (await import('../dist/bin/client/cli.js')).clientMain : (await import('../dist/bin/main.js')).main;
process.exit(await run(argv));
