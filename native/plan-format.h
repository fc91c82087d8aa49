/* The binary format shared by the TypeScript side, the plan interpreter and the init, defined
 * once: the operations of a spawn plan and the records the init writes to its status pipe.
 * The addon exports both tables (planFormat), and src/syscalls/process.ts checks at load
 * that they name exactly the operations and records it builds and reads. */
#ifndef CHROOT_RUNNER_PLAN_FORMAT_H
#define CHROOT_RUNNER_PLAN_FORMAT_H

/* The operations of a plan, numbered from 1 in this order: X(NAME, jsName). Each step is
 * PLAN_STEP_WIDTH int32s: op, five arguments, and two string indices (-1 for none). */
#define PLAN_OPERATIONS(X)                                                                  \
  X(OPEN, open)                         /* dst, base, open flags, resolve flags, options; path */ \
  X(OPEN_TREE, openTree)                /* dst, base, flags, -, options; path */            \
  X(MOVE_MOUNT, moveMount)              /* source slot, target slot, options; target path, source path */ \
  X(FSOPEN, fsopen)                     /* dst; fs type */                                  \
  X(FSCONFIG, fsconfig)                 /* fs slot, command, aux; key, value */             \
  X(FSMOUNT, fsmount)                   /* dst, fs slot, attributes */                      \
  X(MOUNT_SETATTR, mountSetattr)        /* slot, attr_set, attr_clr, propagation, flags */  \
  X(MKDIRAT, mkdirat)                   /* base, mode; name */                              \
  X(CREATE_FILE, createFile)            /* base, mode; name */                              \
  X(SYMLINKAT, symlinkat)               /* base; target, name */                            \
  X(FCHDIR, fchdir)                     /* slot */                                          \
  X(UNSHARE, unshare)                   /* flags */                                         \
  X(SET_ROOT_PROPAGATION, setRootPropagation) /* propagation (MS_SLAVE or MS_PRIVATE) */    \
  X(PIVOT_ROOT, pivotRoot)              /* new root slot */                                 \
  X(COVER_ROOT, coverRoot)              /* new root slot: moved over "/", chrooted into */   \
  X(CHROOT, chroot)                     /* new root slot */                                 \
  X(CHDIR, chdir)                       /* base, resolve flags; path */                     \
  X(DUP2, dup2)                         /* source slot, target fd */                        \
  X(SET_CREDENTIALS, setCredentials)    /* uid, gid; plan.groups */                         \
  X(DROP_BOUNDING_CAPS, dropBoundingCaps) /* capabilities 0..31 kept, 32..63 kept */        \
  X(NO_NEW_PRIVS, noNewPrivs)                                                               \
  X(PDEATHSIG, pdeathsig)               /* signal, runner pidfd slot (-1: none) */          \
  X(LOOPBACK_UP, loopbackUp)                                                                \
  X(CLOEXEC_FROM, cloexecFrom)          /* first fd */                                      \
  X(EXEC, exec)                         /* executable slot; plan.argv, plan.envp */         \
  X(WRITE_FILE, writeFile)              /* base; path, content */                           \
  X(SAME_INODE, sameInode)              /* slot, slot */                                    \
  X(MKNODAT, mknodat)                   /* base, mode (type and permissions), major, minor; name */ \
  X(SETNS, setns)                       /* namespace slot, namespace type */                \
  X(SETSID, setsid)                     /* -: a new session, no controlling terminal */     \
  X(JOIN_SESSION_KEYRING, joinSessionKeyring) /* -: a new anonymous session keyring */       \
  X(SECCOMP, seccomp)                   /* -: loads plan.seccompProgram (after NO_NEW_PRIVS) */ \
  X(AWAIT_ID_MAPS, awaitIdMaps)         /* uid_map, gid_map: the runner writes them */         \
  X(BECOME_NAMESPACE_OWNER, becomeNamespaceOwner) /* uid, gid: real and effective ids */   \
  X(EXIT, exit)                         /* -: the child exits with 0 instead of exec'ing */

enum plan_op {
  OP_NONE = 0,
#define PLAN_OP_ENUM(name, js) OP_##name,
  PLAN_OPERATIONS(PLAN_OP_ENUM)
#undef PLAN_OP_ENUM
  OP_COUNT,
};

enum { PLAN_STEP_WIDTH = 8 };

/* Options of OP_OPEN, OP_OPEN_TREE and OP_MOVE_MOUNT (optional only): X(NAME, jsName, value). */
#define PLAN_OPEN_OPTIONS(X)                                                                \
  X(MKDIR, mkdir, 1)       /* create a missing single-component directory, then open it */  \
  X(OPTIONAL, optional, 2) /* ENOENT leaves the slot empty; steps on an empty slot do nothing */

enum plan_open_option {
#define PLAN_OPTION_ENUM(name, js, value) OPTION_##name = value,
  PLAN_OPEN_OPTIONS(PLAN_OPTION_ENUM)
#undef PLAN_OPTION_ENUM
};

/* The init's records, each a kind followed by one int32 value: X(NAME, jsName, kind). */
#define INIT_RECORDS(X)                                                                     \
  X(EXEC_FAILED, execFailed, 1) /* errno of the action's execve */                          \
  X(EXITED, exited, 2)          /* exit code of the action's main process */                \
  X(SIGNALED, signaled, 3)      /* signal that killed the action's main process */          \
  X(INIT_FAILED, initFailed, 4) /* errno of the init's fork, or of a move to its cgroup */   \
  X(CANCELLED, cancelled, 5)    /* signal that asked the init to kill the tree */

/* getrusage(RUSAGE_CHILDREN) after the tree was reaped, one field per record, kinds from
 * RECORD_USAGE_FIRST on in this order. The runner cannot use its own wait4 figures for the
 * init: exec from a vfork child folds the runner's peak RSS into the init's maxrss. */
#define INIT_USAGE_RECORDS(X)                                                               \
  X(UTIME_SEC, utimeSeconds)                                                                \
  X(UTIME_USEC, utimeMicroseconds)                                                          \
  X(STIME_SEC, stimeSeconds)                                                                \
  X(STIME_USEC, stimeMicroseconds)                                                          \
  X(MAXRSS, maxrss)                                                                         \
  X(MINFLT, minflt)                                                                         \
  X(MAJFLT, majflt)                                                                         \
  X(NSWAP, nswap)                                                                           \
  X(INBLOCK, inblock)                                                                       \
  X(OUBLOCK, oublock)                                                                       \
  X(MSGSND, msgsnd)                                                                         \
  X(MSGRCV, msgrcv)                                                                         \
  X(NSIGNALS, nsignals)                                                                     \
  X(NVCSW, nvcsw)                                                                           \
  X(NIVCSW, nivcsw)

enum record_kind {
#define INIT_RECORD_ENUM(name, js, kind) RECORD_##name = kind,
  INIT_RECORDS(INIT_RECORD_ENUM)
#undef INIT_RECORD_ENUM
  RECORD_USAGE_FIRST = 16,
  RECORD_USAGE_BEFORE_FIRST = RECORD_USAGE_FIRST - 1,
#define INIT_USAGE_ENUM(name, js) RECORD_USAGE_##name,
  INIT_USAGE_RECORDS(INIT_USAGE_ENUM)
#undef INIT_USAGE_ENUM
};

#endif
