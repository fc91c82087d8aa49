import { existsSync, statfsSync } from 'node:fs';
import { type DoctorCheck, ok, readSetting } from '../check.js';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const TMPFS_MAGIC = 0x01021994;

export const cgroup: DoctorCheck = {
  id: 'cgroup',
  title: 'cgroup',
  run() {
    let type: number;
    try {
      type = statfsSync('/sys/fs/cgroup').type;
    } catch {
      return ok('/sys/fs/cgroup is not mounted (the runner does not need it)');
    }
    const own = readSetting('/proc/self/cgroup')?.split('\n')[0] ?? '';
    if (type === CGROUP2_SUPER_MAGIC) return ok(`v2 (unified), this process in ${own}`);
    if (type === TMPFS_MAGIC) {
      const hybrid = existsSync('/sys/fs/cgroup/unified');
      return ok(hybrid ? 'v1 with a v2 hierarchy (hybrid)' : 'v1');
    }
    return ok(`unrecognised filesystem 0x${type.toString(16)} at /sys/fs/cgroup`);
  },
};
