// The typed syscall façade: the only module above the addon. Every fd the addon returns is
// wrapped in a handle with an explicit close() and Symbol.dispose.
import { closeSync } from 'node:fs';

/** Handles that are open now, so that tests can prove none is forgotten. */
const openHandles = new Set<Fd>();

export function openHandleCount(): number {
  return openHandles.size;
}

/** An owned file descriptor. */
export class Fd implements Disposable {
  #fd: number;

  constructor(fd: number) {
    this.#fd = fd;
    openHandles.add(this);
  }

  /** The descriptor number; throws once closed so a stale number is never used. */
  get fd(): number {
    if (this.#fd < 0) throw new Error('file descriptor used after close()');
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    openHandles.delete(this);
    closeSync(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** An O_PATH|O_DIRECTORY handle on a directory. */
export class DirectoryHandle extends Fd {}
