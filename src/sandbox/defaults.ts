// The default isolation: everything the issue asks for, nothing more.
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
