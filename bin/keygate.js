#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm install` through the prepare script).
import { main } from '../dist/bin/main.js';

process.exit(await main(process.argv.slice(2)));
