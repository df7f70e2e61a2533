// Runs the keygate CLI from the TypeScript sources (through tsx), the way bin/keygate.js runs
// the compiled one, so tests need no build. Spawned by test/lib/cli.ts.
import { main } from '../../bin/main.js';

process.exit(await main(process.argv.slice(2)));
