/**
 * The check every value the page sends to the kernel passes first (results of page handlers,
 * arguments of page calls and echoes): JSON must carry it faithfully, or it is refused here,
 * before anything is enqueued, rather than being silently changed by JSON.stringify (NaN and
 * Infinity become null, functions vanish) or refused by the kernel (which would refuse the whole
 * POST that carried it).
 *
 * JSON.stringify's conventions for `undefined` are kept: `undefined` as a whole result or as an
 * element of an array becomes `null`, and an object key whose value is `undefined` is left out.
 * A value's `toJSON` method is applied first, as JSON.stringify does (a Date becomes its ISO
 * string); boxed numbers, strings and booleans count as what they hold. Lone surrogates pass
 * unchanged (JSON.stringify writes them as `\udXXX` escapes, which the kernel keeps).
 */

/** The most arrays and objects nested in one another that a value sent may hold. */
export const MAX_DEPTH = 250;

/** Paths longer than this are cut in error messages. */
const MAX_PATH_CHARS = 200;

/** Thrown inside the walk, caught at its top: the keys are collected on the way out. */
class Refusal {
  /**
   * @param {string} what what the bad value is ('a function', 'NaN', ...)
   */
  constructor(what) {
    this.what = what;
    /** @type {(string | number)[]} the keys from the bad value up to the root, innermost first */
    this.keys = [];
    /** @type {object[]} the containers from the bad value up to the root, innermost first */
    this.containers = [];
  }
}

/**
 * @param {unknown} value
 * @param {string} root how the value is named in errors ('result', 'args')
 * @returns {void}
 * @throws {TypeError} `cannot send <root><path>: <what>` when JSON cannot carry `value` as it is,
 *   for example `cannot send args[2].x: a function` or `cannot send result.items[3]: NaN`
 */
export function checkSendable(value, root) {
  try {
    walk(value, '', 0);
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    throw new TypeError(`cannot send ${root}${pathOf(error)}: ${error.what}`);
  }
}

/**
 * @param {unknown} value
 * @param {string} key the key under which the value sits, given to `toJSON`
 * @param {number} depth how many containers hold it
 */
function walk(value, key, depth) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return;
    case 'number':
      if (value - value !== 0) throw new Refusal(numberName(value)); // NaN or +/-Infinity
      return;
    case 'object':
      if (value === null) return;
      walkObject(value, key, depth);
      return;
    case 'function':
      throw new Refusal('a function');
    case 'symbol':
      throw new Refusal('a symbol');
    case 'bigint':
      throw new Refusal('a BigInt');
    default:
      throw new Refusal(`a value of type ${typeof value}`);
  }
}

/**
 * @param {object} value
 * @param {string} key
 * @param {number} depth
 */
function walkObject(value, key, depth) {
  if (typeof value.toJSON === 'function') {
    const replaced = value.toJSON(key); // JSON.stringify calls it once, and so does this walk
    if (typeof replaced !== 'object' || replaced === null) {
      walk(replaced, key, depth);
      return;
    }
    walkContainer(replaced, key, depth, replaced === value);
    return;
  }
  walkContainer(value, key, depth, false);
}

/**
 * @param {object} value an object whose `toJSON`, if any, was applied
 * @param {string} key
 * @param {number} depth
 * @param {boolean} ownToJSON whether `value` is what its own `toJSON` gave: that method is then
 *   one of its keys, which JSON.stringify leaves out like any function
 */
function walkContainer(value, key, depth, ownToJSON) {
  if (depth >= MAX_DEPTH) throw new Refusal(`more than ${MAX_DEPTH} arrays or objects deep`);
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index += 1) {
      const item = value[index];
      if (needsWalk(item)) walkChild(item, index, value, depth);
    }
    return;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    const boxed = unbox(value);
    if (boxed !== value) {
      walk(boxed, key, depth);
      return;
    }
  }
  for (const name in value) {
    if (!Object.hasOwn(value, name) || (ownToJSON && name === 'toJSON')) continue;
    const item = value[name];
    if (needsWalk(item)) walkChild(item, name, value, depth);
  }
}

/**
 * @param {unknown} item
 * @returns {boolean} false for the values that need no look (strings, booleans, finite numbers,
 *   null, undefined): the common case, kept cheap
 */
function needsWalk(item) {
  switch (typeof item) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return false;
    case 'number':
      return item - item !== 0;
    case 'object':
      return item !== null;
    default:
      return true;
  }
}

/**
 * @param {unknown} item
 * @param {string | number} key
 * @param {object} container
 * @param {number} depth the container's depth
 */
function walkChild(item, key, container, depth) {
  try {
    walk(item, typeof key === 'number' ? String(key) : key, depth + 1);
  } catch (error) {
    if (error instanceof Refusal) {
      error.keys.push(key);
      error.containers.push(container);
    }
    throw error;
  }
}

/**
 * @param {object} value
 * @returns {unknown} the primitive a boxed number, string, boolean or BigInt holds, else `value`
 */
function unbox(value) {
  if (value instanceof Number) return Number(value);
  if (value instanceof String) return String(value);
  if (value instanceof Boolean) return value.valueOf();
  if (typeof BigInt === 'function' && value instanceof BigInt) return value.valueOf();
  return value;
}

/**
 * @param {number} value
 * @returns {string}
 */
function numberName(value) {
  if (Number.isNaN(value)) return 'NaN';
  return value > 0 ? 'Infinity' : '-Infinity';
}

/**
 * The path to the refused value; for a value nested too deep, the path to the first container
 * that holds itself, when that is why (a cycle).
 *
 * @param {Refusal} refusal
 * @returns {string} such as `[2].x`
 */
function pathOf(refusal) {
  const keys = refusal.keys.slice().reverse();
  const containers = refusal.containers.slice().reverse();
  if (containers.length >= MAX_DEPTH) {
    const seen = new Set();
    for (let index = 0; index < containers.length; index += 1) {
      if (seen.has(containers[index])) {
        refusal.what = 'a cycle (a value that contains itself)';
        return formatPath(keys.slice(0, index));
      }
      seen.add(containers[index]);
    }
  }
  return formatPath(keys);
}

/**
 * @param {(string | number)[]} keys
 * @returns {string}
 */
function formatPath(keys) {
  let path = '';
  for (const key of keys) {
    if (path.length > MAX_PATH_CHARS) return `${path}...`;
    if (typeof key === 'number') path += `[${key}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(key)) path += `.${key}`;
    else path += `[${JSON.stringify(key)}]`;
  }
  return path;
}
