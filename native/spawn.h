/* What the N-API side of spawn (spawn.c) and the plan interpreter (interpreter.c) share: the
 * plan as the interpreter reads it, and what the child reports back through shared memory. */
#ifndef CHROOT_RUNNER_SPAWN_H
#define CHROOT_RUNNER_SPAWN_H

#include "plan-format.h"

#include <linux/filter.h>
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* The system calls a step can fail in, for errors: X(ID, "name"). */
#define SPAWN_SYSCALLS(X)                                                                   \
  X(OPENAT2, "openat2") X(MKDIRAT, "mkdirat") X(OPEN_TREE, "open_tree")                    \
  X(MOVE_MOUNT, "move_mount") X(FSOPEN, "fsopen") X(FSCONFIG, "fsconfig")                  \
  X(FSMOUNT, "fsmount") X(MOUNT_SETATTR, "mount_setattr") X(OPENAT, "openat")              \
  X(SYMLINKAT, "symlinkat") X(FCHDIR, "fchdir") X(UNSHARE, "unshare") X(MOUNT, "mount")    \
  X(PIVOT_ROOT, "pivot_root") X(UMOUNT2, "umount2") X(CHDIR, "chdir") X(CHROOT, "chroot")  \
  X(DUP2, "dup2") X(FCNTL, "fcntl") X(SETGROUPS, "setgroups") X(SETRESGID, "setresgid")    \
  X(SETRESUID, "setresuid") X(PRCTL, "prctl") X(SOCKET, "socket") X(IOCTL, "ioctl")        \
  X(CLOSE_RANGE, "close_range") X(EXECVEAT, "execveat") X(WRITE, "write")                  \
  X(FSTAT, "fstat") X(MKNODAT, "mknodat") X(SETNS, "setns") X(SETSID, "setsid")     \
  X(KEYCTL, "keyctl") X(SECCOMP, "seccomp") X(SETFSUID, "setfsuid")                   \
  X(PPOLL, "ppoll") X(FUTEX, "futex")                                                       \
  X(BADSLOT, "slot")

enum syscall_id {
#define SPAWN_SYSCALL_ENUM(id, name) SYS_ID_##id,
  SPAWN_SYSCALLS(SPAWN_SYSCALL_ENUM)
#undef SPAWN_SYSCALL_ENUM
};

struct spawn_context {
  /* The plan, copied out of JavaScript values: one allocation each. */
  int32_t *steps;
  size_t step_count;
  char *string_data; /* the strings, each NUL-terminated */
  char **strings;    /* pointers into string_data */
  size_t string_count;
  int *slots;
  size_t slot_count;
  char **argv; /* NULL-terminated vectors of pointers into string_data */
  char **envp;
  gid_t *groups;
  size_t group_count;
  /* The ids the clone is made as (-1: the runner's): the owner of a new user namespace. */
  int32_t clone_owner_uid, clone_owner_gid;
  struct sock_filter *seccomp_program; /* a BPF program compiled by native/seccomp.c */
  size_t seccomp_length;               /* in instructions; 0 for none */
  int clone_flags;
  int cgroup_fd; /* the cgroup (v2) to clone the child into, or -1: see clone_child */
  int status_slot;
  /* The plan's OP_AWAIT_ID_MAPS step, or -1: its child cannot be a vfork child, since the
   * runner must write the maps while the child waits. */
  int id_maps_step;
  /* That step's handshake, in the memory the child shares until its exec or exit: futex
   * words, so that no fd pair is made for it. The state is also the clone's child tid word
   * (CLONE_CHILD_CLEARTID), which the kernel clears at that exec or exit. */
  volatile uint32_t id_maps_state;
  volatile int32_t id_maps_errno;
  /* Written by the child (the memory is shared until exec or exit): the step that failed,
   * or that the child reached OP_EXIT. */
  volatile int failed_step;
  volatile int failed_errno;
  volatile int failed_syscall;
  volatile bool exited;
  int *initial_slots; /* the slots before the steps ran, to tell what the steps opened */
  /* Results of the clone, for the completion callback. */
  int clone_errno;
  pid_t pid;
  int pidfd;
  int status_read_fd;
  void *stack;
  napi_async_work work;
  napi_deferred deferred;
  napi_ref report; /* the caller's report array (errors.h) */
};

/* The states of spawn_context.id_maps_state. */
enum id_maps_state {
  ID_MAPS_DONE = 0,      /* the child exec'd or exited (the kernel cleared the word) */
  ID_MAPS_RUNNING = 1,   /* set by the runner before the clone */
  ID_MAPS_REQUESTED = 2, /* the child unshared its user namespace and waits for its maps */
  ID_MAPS_ANSWERED = 3,  /* the runner wrote them, or failed to: id_maps_errno says */
};

/* FUTEX_WAIT and FUTEX_WAKE on a word of memory the runner and the child share: not private
 * futexes, as the kernel's wake at the exec or exit of a CLONE_CHILD_CLEARTID child is not
 * one. Raw syscalls: the child may call no libc function that touches thread state. */
static inline long futex_wait(volatile uint32_t *word, uint32_t value,
                              const struct timespec *timeout) {
  return syscall(SYS_futex, word, FUTEX_WAIT, value, timeout, NULL, 0);
}

static inline long futex_wake(volatile uint32_t *word) {
  return syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Brings the current network namespace's loopback interface up; -1 with errno and
 * *syscall_id the call that failed. Async-signal-safe: the child's OP_LOOPBACK_UP, and
 * network-namespace.c on a thread-pool thread. */
int loopback_up(int *syscall_id);

/* The name of a SPAWN_SYSCALLS id, for errors. */
const char *spawn_syscall_name(int syscall_id);

/* The child's entry point (clone's fn): runs the plan's steps and execs, or exits. */
int plan_child_main(void *arg);

#endif
