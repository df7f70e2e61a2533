// The keygate CLI from the TypeScript sources (through tsx), as bin/keygate.js runs the compiled
// one, so benchmarks need no build: node --import=tsx bench/cli.ts --config F --role R
import { main } from '../bin/main.js';

process.exit(await main(process.argv.slice(2)));
