// A FIFO that actions write a line to once they have started, so that a test waits for an
// action to run instead of sleeping.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { openSync } from 'node:fs';
import { Socket } from 'node:net';

/** The FIFO at `path` (made here); `lines(n)` resolves once n lines in all were written.
 * Opened read-write, so that writers never block and it never reports end of file. */
export class StartSignal {
  readonly #stream: Socket;
  #count = 0;
  readonly #waiters: { count: number; resolve: () => void }[] = [];

  constructor(readonly path: string) {
    execFileSync('mkfifo', ['-m', '666', path]);
    // A socket, not a file stream: reads wait in epoll, not in one of libuv's four threads,
    // so a line that never comes blocks nothing else.
    this.#stream = new Socket({ fd: openSync(path, 'r+'), readable: true, writable: false });
    this.#stream.on('data', (chunk: Buffer) => {
      this.#count += chunk.toString().split('\n').length - 1;
      for (const waiter of [...this.#waiters]) {
        if (this.#count >= waiter.count) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    });
  }

  /** Resolves once `count` lines in all have been written. */
  lines(count: number): Promise<void> {
    if (this.#count >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }

  async close(): Promise<void> {
    const closed = once(this.#stream, 'close');
    this.#stream.destroy();
    await closed;
  }
}
