/* createNetworkNamespace(): a new network namespace with loopback up (and, when asked, a
 * detached sysfs of it, which keeps its sysfs superblock for the actions that mount one),
 * made ahead of the action that enters it (setns), so that its cost (the largest of an
 * action's kernel work) is off the event loop and off the action's path;
 * readNetworkNamespace(): files of an
 * existing one's /proc/<tid>/net, read by a thread that entered it (setns), so that the
 * runner can tell whether an action left it as it was made. Each is done on a thread of its
 * own that
 * ends with it: unshare(CLONE_NEWNET) and setns move only the calling thread, and a thread that never
 * returns to the runner's namespace needs no way back (a runner that is root only of a user
 * namespace of its own may make one, but not setns into the host's). The thread runs at
 * SCHED_IDLE: it uses only a core that nothing else of the machine wants, and never competes
 * with the actions it prepares for (when asked: the engine's first ones are made at normal
 * priority, as nothing runs yet that they could slow down, and a busy machine would delay
 * its start-up). */
#include "errors.h"
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const namespace_path = "/proc/thread-self/ns/net";

struct network_namespace_work {
  napi_threadsafe_function delivery;
  napi_deferred deferred;
  bool idle;
  /* The namespace to enter and read, or -1 to make a new one (then fd is its fd). */
  int target;
  int fd;
  /* Whether to mount a sysfs of the new namespace too, and its detached mount (or -1). */
  bool with_sysfs;
  int sysfs;
  /* Names beneath /proc/thread-self/net/, and what each held once made or entered (NULL when
   * it could not be read: absent, as /proc/net/snmp6 without IPv6). */
  uint32_t file_count;
  char **files;
  char **contents;
  int error;
  const char *syscall;
  const char *path;
};

static void free_work(struct network_namespace_work *work) {
  for (uint32_t i = 0; i < work->file_count; i++) {
    free(work->files[i]);
    if (work->contents != NULL) free(work->contents[i]);
  }
  free(work->files);
  free(work->contents);
  free(work);
}

/* The whole of the file `name` beneath the directory net (procfs files have no size), or
 * NULL. */
static char *read_net_file(int net, const char *name) {
  int fd = (int)syscall(SYS_openat, net, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t capacity = 4096, length = 0;
  char *text = malloc(capacity);
  while (text != NULL) {
    if (capacity - length < 1024) {
      char *grown = realloc(text, capacity * 2);
      if (grown == NULL) {
        free(text);
        text = NULL;
        break;
      }
      text = grown;
      capacity *= 2;
    }
    ssize_t got = read(fd, text + length, capacity - length - 1);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      free(text);
      text = NULL;
    } else if (got == 0) {
      text[length] = '\0';
      break;
    } else {
      length += (size_t)got;
    }
  }
  close(fd);
  return text;
}

/* Reads each of work's files beneath /proc/thread-self/net, looked up once. */
static void read_net_files(struct network_namespace_work *work) {
  int net = (int)syscall(SYS_openat, AT_FDCWD, "/proc/thread-self/net",
                         O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (net < 0) return;
  for (uint32_t i = 0; i < work->file_count; i++)
    work->contents[i] = read_net_file(net, work->files[i]);
  close(net);
}

/* A detached read-only mount of a sysfs of the calling thread's network namespace, or -1
 * where it is refused (each action mounts its own then, as without it). */
static int mount_sysfs(void) {
  int fs = fsopen("sysfs", FSOPEN_CLOEXEC);
  if (fs < 0) return -1;
  int mount = -1;
  if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0) {
    mount = fsmount(fs, FSMOUNT_CLOEXEC,
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  }
  close(fs);
  return mount;
}

static void make_namespace(struct network_namespace_work *work) {
  int syscall_id;
  if (unshare(CLONE_NEWNET) < 0) {
    work->error = errno;
    work->syscall = "unshare";
  } else if (loopback_up(&syscall_id) < 0) {
    work->error = errno;
    work->syscall = spawn_syscall_name(syscall_id);
  } else if ((work->fd = (int)syscall(SYS_openat, AT_FDCWD, namespace_path,
                                      O_RDONLY | O_CLOEXEC)) < 0) {
    work->error = errno;
    work->syscall = "open";
    work->path = namespace_path;
  } else {
    if (work->with_sysfs) work->sysfs = mount_sysfs();
    read_net_files(work);
  }
}

static void read_namespace(struct network_namespace_work *work) {
  if (setns(work->target, CLONE_NEWNET) < 0) {
    work->error = errno;
    work->syscall = "setns";
  } else {
    read_net_files(work);
  }
}

/* Its name, as top and /proc/<pid>/task/<tid>/comm show it (15 characters at most). */
static const char *const thread_name = "netns-ahead";

static void *namespace_thread(void *data) {
  struct network_namespace_work *work = data;
  pthread_setname_np(pthread_self(), thread_name);
  /* Refused (a seccomp profile): the work is done at normal priority. */
  struct sched_param idle = {.sched_priority = 0};
  if (work->idle) (void)sched_setscheduler(0, SCHED_IDLE, &idle);
  if (work->target < 0) {
    make_namespace(work);
  } else {
    read_namespace(work);
  }
  /* work is the main thread's once delivered: the function is released by its copy. */
  napi_threadsafe_function delivery = work->delivery;
  if (napi_call_threadsafe_function(delivery, work, napi_tsfn_blocking) == napi_ok) {
    napi_release_threadsafe_function(delivery, napi_tsfn_release);
  } else {
    /* The environment is going away (napi_closing: the function is gone, not to be
     * released): nobody waits for the namespace. */
    if (work->fd >= 0) close(work->fd);
    if (work->sysfs >= 0) close(work->sysfs);
    free_work(work);
  }
  return NULL;
}

/* On the main thread: settles the promise. env is NULL when the environment is torn down
 * with the delivery still queued. */
static void deliver(napi_env env, napi_value callback, void *context, void *data) {
  (void)callback;
  (void)context;
  struct network_namespace_work *work = data;
  if (env == NULL) {
    if (work->fd >= 0) close(work->fd);
    if (work->sysfs >= 0) close(work->sysfs);
  } else if (work->error == 0) {
    napi_value files, result;
    napi_create_array_with_length(env, work->file_count, &files);
    for (uint32_t i = 0; i < work->file_count; i++) {
      napi_value content;
      if (work->contents[i] == NULL) {
        napi_get_null(env, &content);
      } else {
        napi_create_string_latin1(env, work->contents[i], NAPI_AUTO_LENGTH, &content);
      }
      napi_set_element(env, files, i, content);
    }
    if (work->target < 0) {
      napi_create_object(env, &result);
      napi_set_named_property(env, result, "fd", make_int32(env, work->fd));
      napi_set_named_property(env, result, "sysfs", make_int32(env, work->sysfs));
      napi_set_named_property(env, result, "files", files);
    } else {
      result = files;
    }
    napi_resolve_deferred(env, work->deferred, result);
  } else {
    napi_value error;
    throw_system_error(env, work->error, work->syscall, work->path);
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, work->deferred, error);
  }
  free_work(work);
}

/* Reads the file names of an array into work (file_count, files, contents). */
static bool get_file_names(napi_env env, napi_value array, struct network_namespace_work *work) {
  bool is_array;
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array) {
    throw_type_error(env, "files must be an array of strings");
    return false;
  }
  uint32_t count;
  napi_get_array_length(env, array, &count);
  work->files = calloc(count == 0 ? 1 : count, sizeof *work->files);
  work->contents = calloc(count == 0 ? 1 : count, sizeof *work->contents);
  if (work->files == NULL || work->contents == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value name;
    if (napi_get_element(env, array, i, &name) != napi_ok ||
        !get_string(env, name, &work->files[i]))
      return false;
    work->file_count = i + 1;
  }
  return true;
}

/* Starts work on a thread of its own; returns its promise. */
static napi_value start_work(napi_env env, struct network_namespace_work *work) {
  napi_value promise, name;
  napi_create_string_utf8(env, "chroot-runner:networkNamespace", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &work->deferred, &promise) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, deliver,
                                      &work->delivery) != napi_ok) {
    free_work(work);
    return NULL;
  }
  /* The thread starts with every signal blocked (as libuv's own threads do): the runner's
   * signals are the event loop's. */
  pthread_attr_t attributes;
  pthread_t thread;
  sigset_t all, original;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &original);
  int error = pthread_attr_init(&attributes);
  if (error == 0) {
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    error = pthread_create(&thread, &attributes, namespace_thread, work);
    pthread_attr_destroy(&attributes);
  }
  pthread_sigmask(SIG_SETMASK, &original, NULL);
  if (error != 0) {
    napi_release_threadsafe_function(work->delivery, napi_tsfn_release);
    work->error = error;
    work->syscall = "pthread_create";
    deliver(env, NULL, NULL, work);
  }
  return promise;
}

/* Reads (target, idle, files) into a new work. */
static struct network_namespace_work *new_work(napi_env env, napi_value idle_value,
                                               napi_value files, int target) {
  bool idle;
  if (napi_get_value_bool(env, idle_value, &idle) != napi_ok) {
    throw_type_error(env, "idle must be a boolean");
    return NULL;
  }
  struct network_namespace_work *work = calloc(1, sizeof *work);
  if (work == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  work->idle = idle;
  work->target = target;
  work->fd = -1;
  work->sysfs = -1;
  if (!get_file_names(env, files, work)) {
    free_work(work);
    return NULL;
  }
  return work;
}

/* createNetworkNamespace(idle, files, sysfs) → Promise<{fd, files, sysfs}>: an fd
 * (close-on-exec) on a new network namespace whose loopback is up, owned by the runner's user
 * namespace, and what the named files of its /proc/net then held (null: unreadable); made at
 * SCHED_IDLE when idle. With sysfs, also a detached read-only mount of a sysfs of it (-1
 * where refused). */
static napi_value js_create_network_namespace(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  bool with_sysfs;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) return throw_type_error(env, "expected idle, files and sysfs");
  if (napi_get_value_bool(env, argv[2], &with_sysfs) != napi_ok) {
    return throw_type_error(env, "sysfs must be a boolean");
  }
  struct network_namespace_work *work = new_work(env, argv[0], argv[1], -1);
  if (work != NULL) work->with_sysfs = with_sysfs;
  return work == NULL ? NULL : start_work(env, work);
}

/* readNetworkNamespace(fd, idle, files) → Promise<(string | null)[]>: what the named files
 * of the /proc/net of the network namespace fd holds, read by a thread that entered it (at
 * SCHED_IDLE when idle). fd must stay open until the promise settles. */
static napi_value js_read_network_namespace(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t target;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) return throw_type_error(env, "expected fd, idle and files");
  if (!get_int32(env, argv[0], &target)) return NULL;
  if (target < 0) return throw_type_error(env, "fd must not be negative");
  struct network_namespace_work *work = new_work(env, argv[1], argv[2], target);
  return work == NULL ? NULL : start_work(env, work);
}

bool register_network_namespace(napi_env env, napi_value exports) {
  return export_function(env, exports, "createNetworkNamespace", js_create_network_namespace) &&
         export_function(env, exports, "readNetworkNamespace", js_read_network_namespace);
}
