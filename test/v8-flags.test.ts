import t from 'tap';
import { flagsToSet, TUNING } from '../bin/v8-flags.js';

t.test('the start-up V8 flags are set when node was given none of them', async (t) => {
  t.same(flagsToSet([]), ['--no-allocation-site-pretenuring']);
  t.same(flagsToSet(['--import=tsx', '--expose-gc', '--max-old-space-size=2048']), TUNING);
});

t.test('a flag given on the command line, in any of the forms V8 reads, is left as given', async (t) => {
  for (const given of [
    '--allocation-site-pretenuring',
    '--no-allocation-site-pretenuring',
    '--noallocation-site-pretenuring',
    '--allocation_site_pretenuring',
    '--no-allocation_site_pretenuring',
  ]) {
    t.same(flagsToSet(['--import=tsx', given]), [], given);
  }
});
