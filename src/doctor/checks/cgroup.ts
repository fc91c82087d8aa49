import { accessSync, constants } from 'node:fs';
import {
  type CgroupLayout,
  cgroupLayout,
  chooseVersion,
  lostWithoutCgroups,
} from '../../cgroups/index.js';
import { type DoctorCheck, ok } from '../check.js';

const lost = `actions run without a cgroup of their own: ${lostWithoutCgroups}`;

/** Whether actions can get a cgroup of their own: a cgroup the runner may make sub-cgroups
 * in, on v2 with the memory and pids controllers, or on the v1 hierarchies. */
export const cgroup: DoctorCheck = {
  id: 'cgroup',
  title: 'cgroup',
  fix: 'delegate a cgroup to the runner (a container with its own cgroup namespace, or a systemd unit with Delegate=yes; docs/deployment.md)',
  run() {
    let layout: CgroupLayout;
    let version: 1 | 2;
    try {
      layout = cgroupLayout();
      version = chooseVersion(layout, 'auto');
    } catch (error) {
      return { status: 'unavailable', detail: `${(error as Error).message}: ${lost}` };
    }
    const directories =
      version === 2 && layout.unified !== null
        ? [layout.unified.directory]
        : [...new Set(layout.v1.values())];
    const closed = directories.filter((directory) => {
      try {
        accessSync(directory, constants.W_OK);
        return false;
      } catch {
        return true;
      }
    });
    if (closed.length > 0) {
      return {
        status: 'unavailable',
        detail: `v${version}, but ${closed.join(', ')} not writable: ${lost}`,
      };
    }
    return ok(`v${version}: a cgroup per action beneath ${directories.join(', ')}`);
  },
};
