// Loads the C addon: this checkout's node-gyp build, or in an installed package the prebuilt
// binary for this platform (prebuilds/, made at pack time), found by node-gyp-build. Only the
// syscalls layer imports this file; everything above it goes through the typed façade in
// ./index.ts.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
// Untyped (CommonJS, no declarations): resolve() is all that is used of it.
const nodeGypBuild = require('node-gyp-build') as { resolve(directory: string): string };

/** The package's root, whether run from src or dist. */
const packageRoot = fileURLToPath(
  new URL(import.meta.url.includes('/dist/') ? '../../../' : '../../', import.meta.url),
);

/** The addon node-gyp-build chose: build/Release/ first, then prebuilds/<platform>-<arch>/. */
const addonPath = nodeGypBuild.resolve(packageRoot);

/** Path of the small static init that becomes PID 1 of an action (native/init.c): built, and
 * shipped, beside the addon. */
export const initExecutablePath = `${dirname(addonPath)}/chroot-runner-init`;

// biome-ignore lint/suspicious/noExplicitAny: the addon's shape is typed by the façade modules.
export const native: any = require(addonPath);
