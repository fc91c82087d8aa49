// The isolation modes, by the name the configuration and the command line use. A new mode is
// one file of this folder and one line here.
import type { IsolationStrategy } from './mode.js';
import { namespacesMode } from './namespaces.js';
import { noneMode } from './none.js';
import { rootlessMode } from './rootless.js';
import { sharedMode } from './shared.js';

const registry = {
  namespaces: namespacesMode,
  shared: sharedMode,
  none: noneMode,
  rootless: rootlessMode,
} as const satisfies Record<string, IsolationStrategy>;

export type IsolationMode = keyof typeof registry;

/** The modes' names, the default first. */
export const isolationModes = Object.keys(registry) as IsolationMode[];

export function isolationStrategy(mode: IsolationMode): IsolationStrategy {
  return registry[mode];
}
