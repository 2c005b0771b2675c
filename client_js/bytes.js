/**
 * Byte arrays joined: the one copy of the loop that reads, uploads and answers use.
 */

/**
 * @param {readonly Uint8Array[]} parts
 * @returns {Uint8Array} a new array holding every part, in order
 */
export function joinBytes(parts) {
  let size = 0;
  for (const part of parts) size += part.length;
  const joined = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return joined;
}
