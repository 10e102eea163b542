// Waiting helpers: polling with timeouts instead of fixed sleeps.

/** Resolves after `ms` milliseconds. Only for pacing pollers, never as an assertion. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * Polls `predicate` (sync or async) every `interval` ms until it returns a truthy value, which is
 * returned. Throws after `timeout` ms with `message` (string or function giving extra context).
 */
export async function waitFor(predicate, { timeout = 10000, interval = 20, message = '' } = {}) {
  const deadline = Date.now() + timeout
  let lastErr
  for (;;) {
    try {
      const v = await predicate()
      if (v) return v
    } catch (err) {
      lastErr = err
    }
    if (Date.now() >= deadline) {
      const extra = typeof message === 'function' ? message() : message
      throw new Error(
        `waitFor timed out after ${timeout} ms${extra ? ': ' + extra : ''}` +
          (lastErr ? ` (last error: ${lastErr.message})` : '')
      )
    }
    await sleep(interval)
  }
}

/** Races `promise` against a timeout; rejects with `message` when it elapses. */
export function withTimeout(promise, timeout, message = 'operation') {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${message} did not complete within ${timeout} ms`)),
        timeout
      )
    }),
  ]).finally(() => clearTimeout(timer))
}

/**
 * Collects values pushed by callbacks. `push` is a bound function usable as a callback;
 * `waitFor(pred)` resolves with the first collected item matching `pred` (past or future);
 * `waitForCount(n)` resolves with the array once at least n items arrived.
 */
export class Collector {
  constructor(name = 'collector') {
    this.name = name
    this.items = []
    this.push = (item) => {
      this.items.push(item)
    }
  }

  async waitFor(pred = () => true, timeout = 10000) {
    return waitFor(() => this.items.find(pred), {
      timeout,
      message: () => `${this.name}: no matching item; got ${safeJson(this.items)}`,
    })
  }

  async waitForCount(n, timeout = 10000) {
    await waitFor(() => this.items.length >= n, {
      timeout,
      message: () => `${this.name}: wanted ${n} items, got ${this.items.length}: ${safeJson(this.items)}`,
    })
    return this.items
  }
}

/** JSON.stringify that survives cycles, ArrayBuffers and long output (for error messages). */
export function safeJson(v, max = 2000) {
  let s
  try {
    s = JSON.stringify(v, (k, val) => {
      if (val instanceof ArrayBuffer) return `ArrayBuffer(${val.byteLength})`
      if (ArrayBuffer.isView(val)) return `${val.constructor.name}(${val.byteLength})`
      return val
    })
  } catch {
    s = String(v)
  }
  if (s && s.length > max) s = s.slice(0, max) + '…'
  return s
}
