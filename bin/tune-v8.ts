// Imported first by the CLI and the benchmark targets, so the flags are set before the rest loads.
import { tuneV8 } from './v8-flags.js';

tuneV8();
