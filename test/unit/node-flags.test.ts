import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MALLOC_TUNABLES, mallocTunables, NODE_FLAGS, withNodeFlags } from '../../src/runtime/node-flags.js';
import { PROJECT_ROOT } from '../helpers/gateway.js';

/**
 * The V8 flags of node-flags.ts work only on node's command line, so every
 * launcher must spell them out. The cluster workers are checked in
 * test/integration/cluster.test.ts; the bench imports NODE_FLAGS itself.
 */
describe('command-line node flags', () => {
  it('has the memory-reducer and old-space flags, each a single --flag', () => {
    assert.ok(NODE_FLAGS.includes('--no-memory-reducer'));
    assert.ok(NODE_FLAGS.some((f) => /^--initial-old-space-size=\d+$/.test(f)));
    for (const f of NODE_FLAGS) assert.match(f, /^--[a-z0-9-]+(=\S+)?$/);
  });

  it('npm start and npm run start:dev run node with them, before the script', () => {
    const scripts = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
    for (const name of ['start', 'start:dev']) {
      const m = /\bnode((?:\s+--\S+)*)\s+dist\/src\/main\.js/.exec(scripts[name]);
      assert.ok(m, `${name}: runs node dist/src/main.js (${scripts[name]})`);
      const flags = m[1].trim().split(/\s+/);
      for (const f of NODE_FLAGS) assert.ok(flags.includes(f), `${name} passes ${f}: ${scripts[name]}`);
    }
  });

  it("the Dockerfile's CMD runs node with them, before the script", () => {
    const cmd = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8').split('\n').filter((l) => l.startsWith('CMD '));
    assert.equal(cmd.length, 1, 'one final CMD');
    const argv = JSON.parse(cmd[0].slice(4)) as string[];
    assert.equal(argv[0], 'node');
    assert.equal(argv.at(-1), 'dist/src/main.js');
    for (const f of NODE_FLAGS) assert.ok(argv.slice(1, -1).includes(f), `CMD passes ${f}: ${cmd[0]}`);
  });

  it('npm start, start:dev and the Dockerfile set the malloc trim threshold unless the operator set GLIBC_TUNABLES', () => {
    const scripts = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
    for (const name of ['start', 'start:dev']) {
      assert.ok(scripts[name].includes(`GLIBC_TUNABLES=\${GLIBC_TUNABLES:-${MALLOC_TUNABLES}} exec node `), `${name}: ${scripts[name]}`);
    }
    const env = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8').split('\n').filter((l) => l.startsWith('ENV GLIBC_TUNABLES='));
    assert.deepEqual(env, [`ENV GLIBC_TUNABLES=${MALLOC_TUNABLES}`]);
  });

  it('takes the operator’s GLIBC_TUNABLES when set and not empty, as the start script’s ${VAR:-default} does', () => {
    assert.equal(mallocTunables({}), MALLOC_TUNABLES);
    assert.equal(mallocTunables({ GLIBC_TUNABLES: '' }), MALLOC_TUNABLES);
    assert.equal(mallocTunables({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }), 'glibc.malloc.arena_max=2');
  });

  it('adds the missing flags to a child process’s arguments, once', () => {
    assert.deepEqual(withNodeFlags(['--enable-source-maps']), ['--enable-source-maps', ...NODE_FLAGS]);
    assert.deepEqual(withNodeFlags([...NODE_FLAGS]), [...NODE_FLAGS]);
  });
});

describe('the supported Node.js runtime', () => {
  it('the image, engines and the pinned node package name the same LTS major', () => {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8'));
    const engines = /^>=(\d+)$/.exec(pkg.engines.node);
    assert.ok(engines, `engines.node is ">=N": ${pkg.engines.node}`);
    const pinned = /^\^(\d+)\./.exec(pkg.devDependencies.node);
    assert.ok(pinned, `devDependencies.node is "^N.x.y": ${pkg.devDependencies.node}`);
    const images = [...readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8').matchAll(/^FROM node:(\d+)-/gm)].map((m) => m[1]);
    assert.equal(images.length, 2, 'build and runtime stages');
    assert.deepEqual(new Set([engines[1], pinned[1], ...images]), new Set([engines[1]]));
    assert.equal(pkg.allowScripts?.node, true, 'npm runs the node package\'s install script that fetches the binary');
  });
});
