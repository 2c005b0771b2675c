// What a page's code may count on that node lacks, for running client_js outside a browser.
// The client itself needs nothing more than node 20 has (fetch, AbortController, crypto,
// TextEncoder); code that the kernel opens a channel with may use `window`, as in a page.

/** Makes `window` the global object, as it is in a browser page (once; idempotent). */
export function installPageGlobals() {
  if (globalThis.window === undefined) globalThis.window = globalThis;
}
