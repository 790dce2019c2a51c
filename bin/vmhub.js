#!/usr/bin/env node
// The vmhub admin CLI: runs src/client.ts through tsx, so no build step is needed.
require('tsx/cjs');
require('../src/client.ts').main(process.argv);
