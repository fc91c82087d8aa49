// The default isolation: namespaces mode with every special filesystem, Docker's default
// capabilities, a network namespace of its own and the seccomp filter.
import { defaultCapabilities } from './capabilities.js';
import { defaultSeccomp } from './seccomp.js';
import type { IsolationSettings, SpecialFilesystems } from './types.js';

export const defaultFilesystems: SpecialFilesystems = {
  proc: true,
  procOptions: {},
  sys: true,
  dev: true,
  // /dev holds a few nodes and links; Docker's default for /dev/shm.
  devSize: '1m',
  shmSize: '64m',
  tmp: true,
  createMountpoints: true,
};

export const defaultIsolation: IsolationSettings = {
  mode: 'namespaces',
  filesystems: defaultFilesystems,
  keepCapabilities: defaultCapabilities,
  network: true,
  seccomp: defaultSeccomp,
};
