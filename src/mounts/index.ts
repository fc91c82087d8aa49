// Fd-relative mounts: mountat, unmountat, and the mount table.
export {
  attributeFlags,
  type BindSpec,
  type FilesystemSpec,
  Mount,
  type MountatOptions,
  type MountFlags,
  type MountSpec,
  mountat,
  openMount,
  type Propagation,
  type UnmountOptions,
  unmountat,
} from './mount.js';
export {
  listAllMounts,
  listMounts,
  type MountInfo,
  readMountinfo,
  readStatmount,
  usesStatmount,
} from './mountinfo.js';
export { sweepMounts } from './sweep.js';
