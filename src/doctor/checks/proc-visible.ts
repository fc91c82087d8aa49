import { readMountinfo } from '../../mounts/index.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

/** Directories in procfs that are permanently empty: a mount on them does not hide anything,
 * so the kernel still counts the procfs as fully visible. */
const permanentlyEmptyProcDirectories = new Set(['sys/fs/binfmt_misc']);

/** A fresh procfs can be mounted in a user namespace only if a procfs mount in this mount
 * namespace shows everything (the kernel's mount_too_revealing): no mounts over its entries,
 * as container runtimes make to mask /proc/kcore, /proc/sys and others. */
export const procVisible: DoctorCheck = {
  id: 'procVisible',
  title: 'fully visible /proc',
  run() {
    const mounts = readMountinfo();
    const procMounts = mounts.filter((mount) => mount.fstype === 'proc');
    if (procMounts.length === 0)
      return unavailable('no procfs is mounted', 'mount a procfs at /proc');
    let masked: string[] = [];
    for (const proc of procMounts) {
      const prefix = proc.mountPoint === '/' ? '/' : `${proc.mountPoint}/`;
      const covering = mounts
        .filter((mount) => mount.parentId === proc.id && mount.id !== proc.id)
        .map((mount) => mount.mountPoint)
        .filter((point) => !permanentlyEmptyProcDirectories.has(point.slice(prefix.length)));
      if (proc.root === '/' && covering.length === 0) {
        return ok(`nothing is mounted over ${proc.mountPoint}`);
      }
      if (masked.length === 0) masked = covering;
    }
    const list = masked.length > 4 ? `${masked.slice(0, 4).join(', ')}, …` : masked.join(', ');
    return unavailable(
      `entries are masked by mounts over them (${list})`,
      'run the runner with an unmasked /proc (Kubernetes securityContext.procMount: Unmasked, docker --security-opt systempaths=unconfined)',
    );
  },
};
