#!/usr/bin/env node
// The vmhub admin CLI. It runs the compiled dist/ (`npm run build`, also run by `npm ci`) while dist is
// newer than every file under src/, so a start costs no compilation; else it runs src/ through tsx (a
// development dependency: without it, an older dist/ still runs).
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const compiled = path.join(root, 'dist', 'cli', 'main.js');

function newestUnder(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestUnder(file) : fs.statSync(file).mtimeMs);
  }
  return newest;
}

function compiledIsCurrent() {
  try {
    return fs.statSync(compiled).mtimeMs > newestUnder(path.join(root, 'src'));
  } catch {
    return false;
  }
}

function tsxAvailable() {
  try {
    require.resolve('tsx/cjs');
    return true;
  } catch {
    return false;
  }
}

if (compiledIsCurrent() || (fs.existsSync(compiled) && !tsxAvailable())) {
  require(compiled).main(process.argv);
} else if (tsxAvailable()) {
  require('tsx/cjs');
  require('../src/cli/main.ts').main(process.argv);
} else {
  process.stderr.write('vmhub: neither dist/cli/main.js nor tsx is installed: run `npm ci`, or `npm run build`\n');
  process.exit(1);
}
