// The default isolation: namespaces mode with every special filesystem, Docker's default
// capabilities, and no network namespace (the action shares the runner's network).
import { defaultCapabilities } from './capabilities.js';
import type { IsolationSettings, SpecialFilesystems } from './types.js';

export const defaultFilesystems: SpecialFilesystems = {
  proc: true,
  procOptions: {},
  sys: true,
  dev: true,
  tmp: true,
  createMountpoints: true,
};

export const defaultIsolation: IsolationSettings = {
  mode: 'namespaces',
  filesystems: defaultFilesystems,
  keepCapabilities: defaultCapabilities,
  network: false,
};
