// Runs the keygate CLI from the TypeScript sources (through tsx), the way bin/keygate.js runs
// the compiled one, so tests need no build. Spawned by test/lib/cli.ts.
import { isClientCommand } from '../../bin/client/nouns.js';

const argv = process.argv.slice(2);
const run = isClientCommand(argv[0]) ? (await import('../../bin/client/cli.js')).clientMain : (await import('../../bin/main.js')).main;
process.exit(await run(argv));
