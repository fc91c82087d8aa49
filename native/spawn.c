/* spawn(plan): the N-API side of launching a plan, and the plan's format for TypeScript.
 *
 * spawn clones a child with CLONE_VM|CLONE_VFORK from a libuv threadpool thread, so its cost
 * does not grow with the runner's heap and the suspension never blocks the event loop. The
 * child interprets the plan (interpreter.c); the plan is built in TypeScript, where the
 * policy lives, and copied out of JavaScript values here. A plan with a cgroup fd is cloned
 * with clone3's CLONE_INTO_CGROUP, through a per-architecture stub (clone3-*.S), so that the
 * child exists only in that cgroup; without one, with glibc's clone(). */
#include "errors.h"
#include "spawn.h"

#include "syscall-numbers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <linux/capability.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

static const char *const syscall_names[] = {
#define SPAWN_SYSCALL_NAME(id, name) name,
    SPAWN_SYSCALLS(SPAWN_SYSCALL_NAME)
#undef SPAWN_SYSCALL_NAME
};

const char *spawn_syscall_name(int syscall_id) { return syscall_names[syscall_id]; }

enum { CHILD_STACK_SIZE = 64 * 1024 };

#ifdef CLONE3_STUB
/* clone3 with the child on args->stack: the child returns fn(arg) to SYS_exit; the parent
 * gets the pid, or -errno (clone3-x86_64.S, clone3-aarch64.S). */
long clone3_run(struct clone_args *args, size_t size, int (*fn)(void *), void *arg);
#endif

/* ---- Entering a cgroup at clone time, probed once. ---- */

#ifdef CLONE3_STUB
/* The probe names fd INT_MAX, which no process has: a kernel that reads the cgroup fd fails
 * with EBADF before it makes anything. */
static int probe_clone_into_cgroup(void) {
  struct clone_args args = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = INT_MAX};
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) _exit(0);
  if (pid < 0) return errno == EBADF ? 0 : errno;
  /* A kernel that cloned though the fd names no cgroup: not one to trust with it. */
  while (waitpid((pid_t)pid, NULL, __WALL) < 0 && errno == EINTR) {
  }
  return EINVAL;
}
#endif

/* 0 when clone3 takes CLONE_INTO_CGROUP here, else the errno that says why not: ENOSYS (no
 * clone3: Linux < 5.3, or a seccomp profile such as Docker's), EINVAL or E2BIG (no
 * CLONE_INTO_CGROUP: Linux < 5.7), ENOEXEC (no stub for this architecture). */
static int clone_into_cgroup_errno(void) {
#ifdef CLONE3_STUB
  static int probed = -1;
  if (probed < 0) probed = probe_clone_into_cgroup();
  return probed;
#else
  return ENOEXEC;
#endif
}

/* The clone of spawn_execute: into the plan's cgroup with clone3 when it names one, else
 * glibc's clone(). -1 with errno on failure. */
static pid_t clone_child(struct spawn_context *ctx, int flags, int *pidfd) {
#ifdef CLONE3_STUB
  if (ctx->cgroup_fd >= 0) {
    struct clone_args args = {
        .flags = (uint64_t)(uint32_t)flags | CLONE_PIDFD | CLONE_INTO_CGROUP,
        .pidfd = (uint64_t)(uintptr_t)pidfd,
        .child_tid = (uint64_t)(uintptr_t)&ctx->id_maps_state,
        .exit_signal = SIGCHLD,
        .stack = (uint64_t)(uintptr_t)ctx->stack,
        .stack_size = CHILD_STACK_SIZE,
        .cgroup = (uint64_t)ctx->cgroup_fd,
    };
    long pid = clone3_run(&args, sizeof args, plan_child_main, ctx);
    if (pid >= 0) return (pid_t)pid;
    errno = (int)-pid;
    return -1;
  }
#endif
  return clone(plan_child_main, (char *)ctx->stack + CHILD_STACK_SIZE,
               flags | CLONE_PIDFD | SIGCHLD, ctx, pidfd, NULL, &ctx->id_maps_state);
}

/* ---- The parent side. ---- */

static void free_context(struct spawn_context *ctx) {
  free(ctx->string_data);
  free(ctx->strings);
  free(ctx->argv);
  free(ctx->envp);
  free(ctx->steps);
  free(ctx->slots);
  free(ctx->initial_slots);
  free(ctx->groups);
  free(ctx->seccomp_program);
  free(ctx->stack);
  free(ctx);
}

/* Writes one id map of process `pid` in one write(2), as /proc requires; 0 or an errno. */
static int write_id_map(pid_t pid, const char *name, const char *content) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  size_t length = strlen(content);
  ssize_t written = write(fd, content, length);
  int result = written < 0 ? errno : (size_t)written == length ? 0 : EIO;
  close(fd);
  return result;
}

/* Waits while the id maps' handshake is in `state` (the word may change meanwhile); returns
 * the state it found. The waits are bounded: a child that dumps core leaves the word as it
 * was (the kernel clears it at any other exit), so each timeout asks its pidfd whether it
 * has exited. */
static uint32_t await_id_maps_change(struct spawn_context *ctx, uint32_t state, int pidfd) {
  const struct timespec bound = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
  uint32_t now;
  while ((now = __atomic_load_n(&ctx->id_maps_state, __ATOMIC_ACQUIRE)) == state) {
    if (futex_wait(&ctx->id_maps_state, state, &bound) < 0 && errno == ETIMEDOUT) {
      struct pollfd exited = {.fd = pidfd, .events = POLLIN};
      if (poll(&exited, 1, 0) == 1) return ID_MAPS_DONE;
    }
  }
  return now;
}

/* The runner's side of OP_AWAIT_ID_MAPS: when the child asks, writes its id maps and answers
 * with the errno (0: written); then waits until the child exec'ed or exited: only then is the
 * shared memory (stack, context) the runner's again, as after a vfork. */
static void serve_id_maps(struct spawn_context *ctx, pid_t pid, int pidfd) {
  const int32_t *step = ctx->steps + (size_t)ctx->id_maps_step * PLAN_STEP_WIDTH;
  uint32_t state = await_id_maps_change(ctx, ID_MAPS_RUNNING, pidfd);
  if (state == ID_MAPS_REQUESTED) {
    int32_t reply = write_id_map(pid, "uid_map", ctx->strings[step[6]]);
    if (reply == 0) reply = write_id_map(pid, "gid_map", ctx->strings[step[7]]);
    ctx->id_maps_errno = reply;
    state = ID_MAPS_ANSWERED;
    __atomic_store_n(&ctx->id_maps_state, state, __ATOMIC_RELEASE);
    futex_wake(&ctx->id_maps_state);
  }
  while (state != ID_MAPS_DONE) state = await_id_maps_change(ctx, state, pidfd);
}

/* The thread's ids and capabilities, to put back after a clone made as other ids. */
struct thread_credentials {
  uid_t euid;
  gid_t egid;
  struct __user_cap_header_struct header;
  struct __user_cap_data_struct caps[2];
};

/* Makes this thread alone (raw syscalls: glibc's set*id would change every thread's) the
 * effective uid and gid `uid`/`gid`, the owner of a user namespace its next clone creates
 * (the kernel takes the creator's euid and egid). The real and saved ids stay the runner's,
 * so that restore_clone_owner may change back, and so do the file system ids: the child
 * opens host files as the runner, as without. 0 or an errno. */
static int become_clone_owner(int32_t uid, int32_t gid, struct thread_credentials *saved) {
  saved->euid = (uid_t)syscall(SYS_geteuid);
  saved->egid = (gid_t)syscall(SYS_getegid);
  saved->header.version = _LINUX_CAPABILITY_VERSION_3;
  saved->header.pid = 0;
  if (syscall(SYS_capget, &saved->header, saved->caps) < 0) return errno;
  if (syscall(SYS_setresgid, -1, (gid_t)gid, -1) < 0) return errno;
  if (syscall(SYS_setresuid, -1, (uid_t)uid, -1) < 0) {
    int error = errno;
    syscall(SYS_setresgid, -1, saved->egid, -1);
    return error;
  }
  syscall(SYS_setfsuid, saved->euid);
  syscall(SYS_setfsgid, saved->egid);
  return 0;
}

static void restore_clone_owner(const struct thread_credentials *saved) {
  /* Allowed without privileges: the real or saved ids are these. Then the capabilities as
   * they were (a change of euid to 0 would raise every permitted one). */
  syscall(SYS_setresuid, -1, saved->euid, -1);
  syscall(SYS_setresgid, -1, saved->egid, -1);
  struct __user_cap_header_struct header = saved->header;
  syscall(SYS_capset, &header, saved->caps);
}

static void spawn_execute(napi_env env, void *data) {
  (void)env;
  struct spawn_context *ctx = data;
  int pipe_fds[2] = {-1, -1};
  if (ctx->status_slot >= 0) {
    if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) {
      ctx->clone_errno = errno;
      return;
    }
    ctx->slots[ctx->status_slot] = pipe_fds[1];
  }
  const bool maps = ctx->id_maps_step >= 0;
  if (maps) ctx->id_maps_state = ID_MAPS_RUNNING;
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int pidfd = -1;
  struct thread_credentials saved;
  const bool owner = ctx->clone_owner_uid >= 0;
  int owner_errno =
      owner ? become_clone_owner(ctx->clone_owner_uid, ctx->clone_owner_gid, &saved) : 0;
  /* Without CLONE_VFORK when the runner must act while the child waits (serve_id_maps waits
   * for the exec instead, which clears the child tid word); CLONE_VM either way, so the clone
   * costs the same. */
  const int wait_flag = maps ? CLONE_CHILD_CLEARTID : CLONE_VFORK;
  pid_t pid = owner_errno != 0
                  ? -1
                  : clone_child(ctx, CLONE_VM | wait_flag | ctx->clone_flags, &pidfd);
  int clone_errno = owner_errno != 0 ? owner_errno : errno;
  if (owner && owner_errno == 0) restore_clone_owner(&saved);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (pipe_fds[1] >= 0) close(pipe_fds[1]);
  if (maps && pid >= 0) serve_id_maps(ctx, pid, pidfd);
  if (pid < 0) {
    ctx->clone_errno = clone_errno;
    if (pipe_fds[0] >= 0) close(pipe_fds[0]);
    return;
  }
  if (ctx->failed_step >= 0 || ctx->exited) {
    /* The child has exited (vfork returns on exit or exec): reap it here. */
    int status;
    while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
    }
    close(pidfd);
    if (pipe_fds[0] >= 0) close(pipe_fds[0]);
    /* A failed plan that shared the fd table leaves nothing of its own in it. */
    if (ctx->failed_step >= 0 && (ctx->clone_flags & CLONE_FILES)) {
      for (size_t i = 0; i < ctx->slot_count; i++) {
        if (ctx->slots[i] >= 0 && ctx->slots[i] != ctx->initial_slots[i]) close(ctx->slots[i]);
      }
    }
    return;
  }
  ctx->pid = pid;
  ctx->pidfd = pidfd;
  ctx->status_read_fd = pipe_fds[0];
}

static napi_value step_error(napi_env env, struct spawn_context *ctx) {
  int step = ctx->failed_step;
  const char *path = NULL;
  if ((size_t)step < ctx->step_count) {
    const int32_t *fields = ctx->steps + (size_t)step * PLAN_STEP_WIDTH;
    int string_index = fields[0] == OP_SYMLINKAT ? fields[7] : fields[6];
    /* The id maps' strings are their content, not a path. */
    if (string_index >= 0 && fields[0] != OP_AWAIT_ID_MAPS) path = ctx->strings[string_index];
  }
  throw_system_error(env, ctx->failed_errno, syscall_names[ctx->failed_syscall], path);
  napi_value error, value;
  napi_get_and_clear_last_exception(env, &error);
  napi_create_int32(env, step, &value);
  napi_set_named_property(env, error, "step", value);
  return error;
}

static void spawn_complete(napi_env env, napi_status status, void *data) {
  struct spawn_context *ctx = data;
  napi_value result;
  if (status != napi_ok) {
    throw_system_error(env, ECANCELED, "spawn", NULL);
    napi_get_and_clear_last_exception(env, &result);
    napi_reject_deferred(env, ctx->deferred, result);
  } else if (ctx->clone_errno != 0) {
    throw_system_error(env, ctx->clone_errno, ctx->cgroup_fd >= 0 ? "clone3" : "clone", NULL);
    napi_get_and_clear_last_exception(env, &result);
    napi_reject_deferred(env, ctx->deferred, result);
  } else if (ctx->failed_step >= 0) {
    napi_reject_deferred(env, ctx->deferred, step_error(env, ctx));
  } else if (ctx->exited) {
    napi_value buffer;
    void *data;
    napi_create_arraybuffer(env, ctx->slot_count * sizeof(int32_t), &data, &buffer);
    if (ctx->slot_count > 0) memcpy(data, ctx->slots, ctx->slot_count * sizeof(int32_t));
    napi_create_typedarray(env, napi_int32_array, ctx->slot_count, buffer, 0, &result);
    napi_resolve_deferred(env, ctx->deferred, result);
  } else {
    napi_value report;
    napi_get_reference_value(env, ctx->report, &report);
    int32_t *words = report_words(env, report);
    if (words != NULL) {
      words[0] = ctx->pid;
      words[1] = ctx->pidfd;
      words[2] = ctx->status_read_fd;
    }
    napi_resolve_deferred(env, ctx->deferred, make_undefined(env));
  }
  napi_delete_reference(env, ctx->report);
  napi_delete_async_work(env, ctx->work);
  free_context(ctx);
}

/* spawn's arguments: the plan's fields by position (src/syscalls/process.ts passes them), as
 * reading each by name would cost a string table lookup. */
enum spawn_argument {
  ARG_STEPS,
  ARG_STRINGS,
  ARG_SLOTS,
  ARG_GROUPS,
  ARG_SECCOMP_PROGRAM,
  ARG_ARGV_START,
  ARG_ARGV_COUNT,
  ARG_ENVP_START,
  ARG_ENVP_COUNT,
  ARG_CLONE_FLAGS,
  ARG_CLONE_OWNER_UID,
  ARG_CLONE_OWNER_GID,
  ARG_CGROUP_FD,
  ARG_STATUS_SLOT,
  ARG_REPORT,
  SPAWN_ARGUMENT_COUNT
};

/* Copies an Int32Array (one memcpy: a plan has a thousand numbers). */
static bool get_int32_array(napi_env env, napi_value value, int32_t **out, size_t *count) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_int32_array) {
    throw_type_error(env, "expected an Int32Array");
    return false;
  }
  *out = malloc((length + 1) * sizeof(int32_t));
  if (*out == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  if (length > 0) memcpy(*out, data, length * sizeof(int32_t));
  *count = length;
  return true;
}

/* Copies a Buffer of NUL-terminated strings and indexes them. */
static bool get_strings(napi_env env, napi_value value, struct spawn_context *ctx) {
  void *data;
  size_t length;
  bool is_buffer;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, &length) != napi_ok ||
      (length > 0 && ((char *)data)[length - 1] != '\0')) {
    throw_type_error(env, "expected a Buffer of NUL-terminated strings");
    return false;
  }
  size_t count = 0;
  for (size_t i = 0; i < length; i++) count += ((char *)data)[i] == '\0';
  ctx->string_data = malloc(length + 1);
  ctx->strings = calloc(count + 1, sizeof *ctx->strings);
  if (ctx->string_data == NULL || ctx->strings == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  memcpy(ctx->string_data, data, length);
  for (size_t i = 0, start = 0; i < length; i++) {
    if (ctx->string_data[i] != '\0') continue;
    ctx->strings[ctx->string_count++] = ctx->string_data + start;
    start = i + 1;
  }
  return true;
}

/* A NULL-terminated vector of `count` strings of the table from `first` on. */
static bool get_string_vector(napi_env env, const napi_value *args, enum spawn_argument first_at,
                              struct spawn_context *ctx, char ***out) {
  int32_t first, count;
  if (!get_int32(env, args[first_at], &first) || !get_int32(env, args[first_at + 1], &count))
    return false;
  if (first < 0 || count < 0 || (size_t)first + (size_t)count > ctx->string_count) {
    throw_type_error(env, "a string vector of the plan is out of range");
    return false;
  }
  *out = calloc((size_t)count + 1, sizeof **out);
  if (*out == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  for (int32_t i = 0; i < count; i++) (*out)[i] = ctx->strings[first + i];
  return true;
}

/* Copies a BPF program (a Buffer of struct sock_filter; empty for none). */
static bool get_seccomp_program(napi_env env, napi_value value, struct spawn_context *ctx) {
  void *data;
  size_t length;
  bool is_buffer;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, &length) != napi_ok ||
      length % sizeof(struct sock_filter) != 0 ||
      length / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    throw_type_error(env, "plan.seccompProgram must be a Buffer of BPF instructions");
    return false;
  }
  if (length == 0) return true;
  ctx->seccomp_program = malloc(length);
  if (ctx->seccomp_program == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  memcpy(ctx->seccomp_program, data, length);
  ctx->seccomp_length = length / sizeof(struct sock_filter);
  return true;
}

static bool read_plan(napi_env env, const napi_value *args, struct spawn_context *ctx) {
  size_t count;

  if (!get_strings(env, args[ARG_STRINGS], ctx)) return false;
  if (!get_int32_array(env, args[ARG_STEPS], &ctx->steps, &count)) return false;
  if (count % PLAN_STEP_WIDTH != 0) {
    throw_type_error(env, "plan.steps must hold whole steps");
    return false;
  }
  ctx->step_count = count / PLAN_STEP_WIDTH;
  for (size_t i = 0; i < ctx->step_count; i++) {
    const int32_t *step = ctx->steps + i * PLAN_STEP_WIDTH;
    if (step[0] <= OP_NONE || step[0] >= OP_COUNT || step[6] < -1 || step[7] < -1 ||
        step[6] >= (int32_t)ctx->string_count || step[7] >= (int32_t)ctx->string_count) {
      throw_type_error(env, "plan.steps holds an invalid step");
      return false;
    }
    if (step[0] == OP_AWAIT_ID_MAPS) {
      if (ctx->id_maps_step >= 0 || step[6] < 0 || step[7] < 0) {
        throw_type_error(env, "a plan awaits its id maps once, with a uid_map and a gid_map");
        return false;
      }
      ctx->id_maps_step = (int)i;
    }
  }
  int32_t *numbers;
  if (!get_int32_array(env, args[ARG_SLOTS], &numbers, &count)) return false;
  ctx->slots = numbers;
  ctx->slot_count = count;
  ctx->initial_slots = malloc((count + 1) * sizeof(int));
  if (ctx->initial_slots == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  if (count > 0) memcpy(ctx->initial_slots, numbers, count * sizeof(int));
  if (!get_int32_array(env, args[ARG_GROUPS], &numbers, &count)) return false;
  ctx->groups = (gid_t *)numbers;
  ctx->group_count = count;
  if (!get_string_vector(env, args, ARG_ARGV_START, ctx, &ctx->argv) ||
      !get_string_vector(env, args, ARG_ENVP_START, ctx, &ctx->envp))
    return false;
  if (!get_int32(env, args[ARG_CLONE_FLAGS], &ctx->clone_flags) ||
      !get_int32(env, args[ARG_CLONE_OWNER_UID], &ctx->clone_owner_uid) ||
      !get_int32(env, args[ARG_CLONE_OWNER_GID], &ctx->clone_owner_gid))
    return false;
  /* Only for a new user namespace: the child holds no capability of the runner's then. */
  if ((ctx->clone_owner_uid < 0) != (ctx->clone_owner_gid < 0) ||
      (ctx->clone_owner_uid >= 0 && !(ctx->clone_flags & CLONE_NEWUSER))) {
    throw_type_error(env, "plan.cloneOwnerUid and cloneOwnerGid go together, with CLONE_NEWUSER");
    return false;
  }
  if (!get_seccomp_program(env, args[ARG_SECCOMP_PROGRAM], ctx)) return false;
  if (!get_int32(env, args[ARG_STATUS_SLOT], &ctx->status_slot)) return false;
  if (ctx->status_slot >= (int)ctx->slot_count) {
    throw_type_error(env, "plan.statusSlot is out of range");
    return false;
  }
  if (!get_int32(env, args[ARG_CGROUP_FD], &ctx->cgroup_fd)) return false;
  if (ctx->cgroup_fd >= 0 && clone_into_cgroup_errno() != 0) {
    throw_type_error(env, "plan.cgroupFd: this runner cannot clone into a cgroup");
    return false;
  }
  return true;
}

/* spawn(steps, strings, slots, groups, seccompProgram, argvStart, argvCount, envpStart,
 * envpCount, cloneFlags, cloneOwnerUid, cloneOwnerGid, cgroupFd, statusSlot, report) →
 * Promise<undefined> once the child exec'd, its pid, pidfd and status pipe's read end (-1 for
 * none) in the first words of `report`; or <Int32Array> of the slots when the plan ended with
 * OP_EXIT; rejects with a system error carrying `step` when a step of the plan failed in the
 * child. */
static napi_value js_spawn(napi_env env, napi_callback_info info) {
  size_t argc = SPAWN_ARGUMENT_COUNT;
  napi_value argv[SPAWN_ARGUMENT_COUNT];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < SPAWN_ARGUMENT_COUNT) {
    return throw_type_error(env, "spawn needs every field of a plan and a report array");
  }
  struct spawn_context *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  ctx->failed_step = -1;
  ctx->id_maps_step = -1;
  ctx->pidfd = -1;
  ctx->status_read_fd = -1;
  if (!read_plan(env, argv, ctx)) {
    free_context(ctx);
    return NULL;
  }
  ctx->stack = malloc(CHILD_STACK_SIZE);
  if (ctx->stack == NULL) {
    free_context(ctx);
    return throw_system_error(env, ENOMEM, "malloc", NULL);
  }
  napi_value promise, name;
  napi_create_string_utf8(env, "chroot-runner:spawn", NAPI_AUTO_LENGTH, &name);
  if (report_words(env, argv[ARG_REPORT]) == NULL ||
      napi_create_reference(env, argv[ARG_REPORT], 1, &ctx->report) != napi_ok) {
    free_context(ctx);
    return NULL;
  }
  if (napi_create_promise(env, &ctx->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, spawn_execute, spawn_complete, ctx, &ctx->work) !=
          napi_ok ||
      napi_queue_async_work(env, ctx->work) != napi_ok) {
    napi_delete_reference(env, ctx->report);
    free_context(ctx);
    return NULL;
  }
  return promise;
}

/* ---- The plan's format, for src/syscalls/process.ts. ---- */

static bool set_int(napi_env env, napi_value object, const char *name, int32_t value) {
  return napi_set_named_property(env, object, name, make_int32(env, value)) == napi_ok;
}

/* planFormat: { stepWidth, operations, openOptions, records, usageRecords }, each table by
 * the names the TypeScript side uses. */
static bool export_plan_format(napi_env env, napi_value exports) {
  napi_value format, operations, options, records, usage;
  if (napi_create_object(env, &format) != napi_ok || napi_create_object(env, &operations) != napi_ok ||
      napi_create_object(env, &options) != napi_ok || napi_create_object(env, &records) != napi_ok ||
      napi_create_object(env, &usage) != napi_ok)
    return false;
  bool ok = set_int(env, format, "stepWidth", PLAN_STEP_WIDTH);
#define EXPORT_OP(name, js) ok = ok && set_int(env, operations, #js, OP_##name);
  PLAN_OPERATIONS(EXPORT_OP)
#undef EXPORT_OP
#define EXPORT_OPTION(name, js, value) ok = ok && set_int(env, options, #js, OPTION_##name);
  PLAN_OPEN_OPTIONS(EXPORT_OPTION)
#undef EXPORT_OPTION
#define EXPORT_RECORD(name, js, kind) ok = ok && set_int(env, records, #js, RECORD_##name);
  INIT_RECORDS(EXPORT_RECORD)
#undef EXPORT_RECORD
#define EXPORT_USAGE(name, js) ok = ok && set_int(env, usage, #js, RECORD_USAGE_##name);
  INIT_USAGE_RECORDS(EXPORT_USAGE)
#undef EXPORT_USAGE
  return ok && napi_set_named_property(env, format, "operations", operations) == napi_ok &&
         napi_set_named_property(env, format, "openOptions", options) == napi_ok &&
         napi_set_named_property(env, format, "records", records) == napi_ok &&
         napi_set_named_property(env, format, "usageRecords", usage) == napi_ok &&
         napi_set_named_property(env, exports, "planFormat", format) == napi_ok;
}

/* cloneIntoCgroupErrno() → 0 when a plan may carry a cgroup fd, else why not (above). */
static napi_value js_clone_into_cgroup_errno(napi_env env, napi_callback_info info) {
  (void)info;
  return make_int32(env, clone_into_cgroup_errno());
}

bool register_spawn(napi_env env, napi_value exports) {
  return export_function(env, exports, "spawn", js_spawn) &&
         export_function(env, exports, "cloneIntoCgroupErrno", js_clone_into_cgroup_errno) &&
         export_plan_format(env, exports);
}
