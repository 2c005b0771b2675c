import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import vm from 'node:vm';

const SOURCE_DIR = new URL('../../client_js/', import.meta.url);
const IMPORT_LINE = /^import \{ ([A-Za-z_$][\w$]*(?:, [A-Za-z_$][\w$]*)*) \} from '\.\/([\w-]+\.js)';$/;
const EXPORT_LINE = /^export (?:class|function|async function|const) ([A-Za-z_$][\w$]*)/;
const TOP_LEVEL_NAME = /^(?:export )?(?:class|function|async function|const|let|var) ([A-Za-z_$][\w$]*)/;

function loadModules() {
  const names = readdirSync(SOURCE_DIR).filter((name) => name.endsWith('.js'));
  return new Map(
    names.map((name) => {
      const lines = readFileSync(new URL(name, SOURCE_DIR), 'utf8').split('\n');
      const imports = lines
        .map((line) => IMPORT_LINE.exec(line))
        .filter(Boolean)
        .map((match) => ({ names: match[1].split(', '), from: match[2] }));
      const exports = lines.map((line) => EXPORT_LINE.exec(line)?.[1]).filter(Boolean);
      const topLevel = lines.map((line) => TOP_LEVEL_NAME.exec(line)?.[1]).filter(Boolean);
      return [name, { name, lines, imports, exports, topLevel }];
    }),
  );
}

function dependencyOrder(modules) {
  const order = [];
  const visiting = new Set();
  const visit = (name) => {
    if (order.includes(name)) return;
    assert.ok(!visiting.has(name), `import cycle through ${name}`);
    visiting.add(name);
    for (const { from } of modules.get(name).imports) visit(from);
    order.push(name);
  };
  [...modules.keys()].sort().forEach(visit);
  return order;
}

function bundle(modules) {
  const bodies = dependencyOrder(modules).map((name) =>
    modules
      .get(name)
      .lines.filter((line) => !IMPORT_LINE.test(line))
      .map((line) => line.replace(/^export /, ''))
      .join('\n'),
  );
  return `(function () {\n'use strict';\n${bodies.join('\n')}\n})();\n`;
}

test('modules follow the bundling conventions', () => {
  const modules = loadModules();
  assert.ok(modules.has('index.js'));
  const seen = new Map();
  for (const module of modules.values()) {
    module.lines.forEach((line, i) => {
      const where = `${module.name}:${i + 1}`;
      if (/^\s*import\b/.test(line)) assert.match(line, IMPORT_LINE, where);
      assert.doesNotMatch(line, /\bimport\s*\(/, where);
      if (/\bexport\b/.test(line) && !/^\s*(\*|\/\/)/.test(line)) assert.match(line, EXPORT_LINE, where);
    });
    for (const { names, from } of module.imports) {
      assert.ok(modules.has(from), `${module.name} imports missing ${from}`);
      for (const name of names) {
        assert.ok(modules.get(from).exports.includes(name), `${from} does not export ${name}`);
      }
    }
    for (const name of module.topLevel) {
      assert.ok(!seen.has(name), `${name} is defined in ${seen.get(name)} and ${module.name}`);
      seen.set(name, module.name);
    }
  }
});

test('the concatenated bundle defines jchannel once, as a classic script', () => {
  const source = bundle(loadModules());
  const context = vm.createContext({
    fetch: () => Promise.reject(new Error('offline')),
    AbortController,
    TextDecoder,
    TextEncoder,
    crypto,
    setTimeout,
    clearTimeout,
    queueMicrotask,
    console,
  });
  vm.runInContext(source, context, { filename: 'client.js' });
  const api = vm.runInContext('globalThis.jchannel', context);
  assert.deepEqual(Object.keys(api).sort(), [
    'Channel', 'Client', 'KernelError', 'MetaGenerator', 'ProgressFeed', 'StateError', 'StreamSource',
    'start', 'stop',
  ]);
  assert.equal(typeof api.start, 'function');
  vm.runInContext(source, context, { filename: 'client.js' });
  assert.equal(vm.runInContext('globalThis.jchannel', context), api);
  const client = new api.Client('http://kernel.test/', {});
  assert.equal(client.url, 'http://kernel.test');
});
