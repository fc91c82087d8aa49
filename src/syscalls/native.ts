// Loads the C addon built by node-gyp. Only the syscalls layer imports this file; everything
// above it goes through the typed façade in ./index.ts.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

/** Directory holding the addon and the init executable, whether run from src or dist. */
export const nativeBuildDirectory = fileURLToPath(
  new URL(
    import.meta.url.includes('/dist/') ? '../../../build/Release/' : '../../build/Release/',
    import.meta.url,
  ),
);

/** Path of the small static init that becomes PID 1 of an action (native/init.c). */
export const initExecutablePath = `${nativeBuildDirectory}chroot-runner-init`;

// biome-ignore lint/suspicious/noExplicitAny: the addon's shape is typed by the façade modules.
export const native: any = require(`${nativeBuildDirectory}chroot_runner.node`);
