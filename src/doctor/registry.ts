// Doctor's checks, in the order they are reported. A new check is one file of checks/ and one
// line here; a mode that needs it names its id in its requirements (src/sandbox/modes/).
import type { DoctorCheck } from './check.js';
import { actionUserNamespaces } from './checks/action-user-namespaces.js';
import { apparmorUserNamespaces } from './checks/apparmor-user-namespaces.js';
import { buildDirectory } from './checks/build-directory.js';
import { capabilities } from './checks/capabilities.js';
import { cgroup } from './checks/cgroup.js';
import { cloneIntoCgroup } from './checks/clone-into-cgroup.js';
import { clonePidfd } from './checks/clone-pidfd.js';
import { jsonnet } from './checks/jsonnet.js';
import { kernel } from './checks/kernel.js';
import { libseccomp } from './checks/libseccomp.js';
import { listmount } from './checks/listmount.js';
import { mountApi } from './checks/mount-api.js';
import { mountSetattr } from './checks/mount-setattr.js';
import { namespaces } from './checks/namespaces.js';
import { openat2 } from './checks/openat2.js';
import { procInUserNamespace } from './checks/proc-in-user-namespace.js';
import { procVisible } from './checks/proc-visible.js';
import { seccomp } from './checks/seccomp.js';
import { closeRange, pidfdOpen } from './checks/syscalls.js';
import { userNamespaceSysctls } from './checks/user-namespace-sysctls.js';
import { userNamespaces } from './checks/user-namespaces.js';

export const doctorChecks: readonly DoctorCheck[] = [
  kernel,
  capabilities,
  mountApi,
  openat2,
  mountSetattr,
  listmount,
  clonePidfd,
  pidfdOpen,
  cloneIntoCgroup,
  closeRange,
  namespaces,
  userNamespaceSysctls,
  apparmorUserNamespaces,
  userNamespaces,
  actionUserNamespaces,
  procVisible,
  procInUserNamespace,
  seccomp,
  libseccomp,
  cgroup,
  buildDirectory,
  jsonnet,
];
