/* A worker thread per pool of network namespaces (src/sandbox/network-namespaces.ts), fed
 * from a queue: it makes new namespaces with loopback up (the largest of an action's kernel
 * work, off the event loop and off the action's path; and, when asked, a detached sysfs of
 * each, which keeps its sysfs superblock for the actions that mount one) and checks whether
 * an action left one as it was made.
 *
 * Making one: unshare(CLONE_NEWNET) on the worker, which stays in the namespace it made last
 * (a runner that is root only of a user namespace of its own may make one, but not setns
 * back into the host's). Everything the worker does in a namespace is done right after it
 * made or entered it: loopback_up's socket, the lookups of /proc/thread-self/. It opens the
 * namespace's /proc/net files there once and keeps them (close-on-exec, owned by the caller
 * until the namespace is closed): a procfs net file is bound to the namespace of the
 * directory it was opened in (proc_net.c: seq_open_net and single_open_net take the net of
 * the file's parent entry and hold it until release), whichever namespace the reader is in
 * later, and a read from offset 0 makes the text anew (seq_file.c: a read at 0 restarts the
 * sequence; seq_files support pread). So a check is one pread from 0 per file, no setns and
 * no open, compared here with the text read once the namespace was made: only what differs
 * is made into a JS string. A file that was absent when made (snmp6 without IPv6) is looked
 * up again by entering the namespace.
 *
 * The worker runs at SCHED_IDLE when the work asks for it: it uses only a core that nothing
 * else of the machine wants, and never competes with the actions it prepares for (the
 * engine's first namespaces are made at normal priority, as nothing runs yet that they could
 * slow down, and a busy machine would delay its start-up). One threadsafe function delivers
 * its results, referenced only while work is queued: an idle worker never keeps the event
 * loop alive. The worker ends at close, or when the environment is torn down. */
#include "errors.h"
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const namespace_path = "/proc/thread-self/ns/net";
static const char *const net_directory_path = "/proc/thread-self/net";

/* Its name, as top and /proc/<pid>/task/<tid>/comm show it (15 characters at most). */
static const char *const thread_name = "netns-ahead";

/* What a namespace's files held once it was made: immutable, shared by its checks (a JS
 * external, freed when collected). */
struct made_files {
  uint32_t count;
  char **names;
  /* NULL when the file could not be read (absent). */
  char **texts;
  size_t *lengths;
};

enum job_kind { JOB_CREATE, JOB_CHECK };

struct job {
  struct job *next;
  enum job_kind kind;
  bool idle;
  /* JOB_CREATE: whether to mount a sysfs of the new namespace too, and its detached mount
   * (or -1). */
  bool with_sysfs;
  int sysfs;
  napi_deferred deferred;
  /* JOB_CREATE: made here, handed to JS on delivery. JOB_CHECK: the namespace's, held by
   * made_reference until delivery. */
  struct made_files *made;
  napi_ref made_reference;
  /* JOB_CREATE: opened here; JOB_CHECK: the caller's, open until delivery. -1: none. */
  int namespace_fd;
  int *file_fds;
  /* JOB_CHECK: per file, whether it reads as when made; else what it holds now (NULL:
   * unreadable). */
  bool *unchanged;
  char **now;
  size_t *now_lengths;
  int error;
  const char *syscall;
  const char *path;
};

struct worker {
  napi_env env;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  /* Under lock. */
  struct job *head, *tail;
  bool stopping;
  /* Main thread only. */
  napi_threadsafe_function delivery;
  uint32_t pending;
  bool closed;
  /* The external and the threadsafe function: the worker is freed with the last. */
  int references;
  /* The worker thread's: whether it runs at SCHED_IDLE now. */
  bool at_idle;
  /* A buffer for reads, grown as needed: the worker thread's. */
  char *scratch;
  size_t scratch_size;
};

static void free_made(struct made_files *made) {
  if (made == NULL) return;
  for (uint32_t i = 0; i < made->count; i++) {
    free(made->names[i]);
    free(made->texts[i]);
  }
  free(made->names);
  free(made->texts);
  free(made->lengths);
  free(made);
}

/* Closes what a creation opened that nobody took. */
static void close_created(struct job *job) {
  if (job->namespace_fd >= 0) close(job->namespace_fd);
  if (job->sysfs >= 0) close(job->sysfs);
  for (uint32_t i = 0; job->made != NULL && i < job->made->count; i++)
    if (job->file_fds[i] >= 0) close(job->file_fds[i]);
}

static void free_job(struct job *job) {
  uint32_t count = job->made == NULL ? 0 : job->made->count;
  if (job->kind == JOB_CREATE) free_made(job->made);
  for (uint32_t i = 0; job->now != NULL && i < count; i++) free(job->now[i]);
  free(job->now);
  free(job->now_lengths);
  free(job->unchanged);
  free(job->file_fds);
  free(job);
}

static struct made_files *new_made(uint32_t count) {
  struct made_files *made = calloc(1, sizeof *made);
  if (made == NULL) return NULL;
  made->names = calloc(count == 0 ? 1 : count, sizeof *made->names);
  made->texts = calloc(count == 0 ? 1 : count, sizeof *made->texts);
  made->lengths = calloc(count == 0 ? 1 : count, sizeof *made->lengths);
  if (made->names == NULL || made->texts == NULL || made->lengths == NULL) {
    free_made(made);
    return NULL;
  }
  return made;
}

/* Reads the whole of fd from offset 0 into the worker's scratch buffer (procfs files have
 * no size); its length, or -1. */
static ssize_t read_whole(struct worker *worker, int fd) {
  size_t length = 0;
  for (;;) {
    if (worker->scratch_size - length < 1024) {
      size_t size = worker->scratch_size == 0 ? 16384 : worker->scratch_size * 2;
      char *grown = realloc(worker->scratch, size);
      if (grown == NULL) return -1;
      worker->scratch = grown;
      worker->scratch_size = size;
    }
    ssize_t got = pread(fd, worker->scratch + length, worker->scratch_size - length - 1,
                        (off_t)length);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -1;
    if (got == 0) {
      worker->scratch[length] = '\0';
      return (ssize_t)length;
    }
    length += (size_t)got;
  }
}

/* A copy of the first length bytes of the scratch buffer, NUL-terminated, or NULL. */
static char *copy_scratch(struct worker *worker, size_t length) {
  char *copy = malloc(length + 1);
  if (copy != NULL) memcpy(copy, worker->scratch, length + 1);
  return copy;
}

/* Opens each file of made beneath the current namespace's /proc/net into fds (-1: absent)
 * and reads it into made's texts. */
static void open_net_files(struct worker *worker, struct made_files *made, int *fds) {
  int net = (int)syscall(SYS_openat, AT_FDCWD, net_directory_path,
                         O_PATH | O_DIRECTORY | O_CLOEXEC);
  for (uint32_t i = 0; i < made->count; i++) {
    fds[i] = net < 0 ? -1 : (int)syscall(SYS_openat, net, made->names[i], O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) continue;
    ssize_t length = read_whole(worker, fds[i]);
    if (length >= 0 && (made->texts[i] = copy_scratch(worker, (size_t)length)) != NULL)
      made->lengths[i] = (size_t)length;
  }
  if (net >= 0) close(net);
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

static void make_namespace(struct worker *worker, struct job *job) {
  int syscall_id;
  if (unshare(CLONE_NEWNET) < 0) {
    job->error = errno;
    job->syscall = "unshare";
  } else if (loopback_up(&syscall_id) < 0) {
    job->error = errno;
    job->syscall = spawn_syscall_name(syscall_id);
  } else if ((job->namespace_fd = (int)syscall(SYS_openat, AT_FDCWD, namespace_path,
                                               O_RDONLY | O_CLOEXEC)) < 0) {
    job->error = errno;
    job->syscall = "open";
    job->path = namespace_path;
  } else {
    if (job->with_sysfs) job->sysfs = mount_sysfs();
    open_net_files(worker, job->made, job->file_fds);
  }
}

/* Whether a file absent when the namespace was made is absent still: looked up in the
 * namespace itself (the worker enters it); else *now is what it holds (NULL: unreadable).
 * A failed lookup fails the check (job->error): it counts as touched. */
static bool still_absent(struct worker *worker, struct job *job, uint32_t index, char **now,
                         size_t *now_length) {
  if (setns(job->namespace_fd, CLONE_NEWNET) < 0) {
    job->error = errno;
    job->syscall = "setns";
    return false;
  }
  char path[256];
  int length = snprintf(path, sizeof path, "%s/%s", net_directory_path, job->made->names[index]);
  if (length < 0 || (size_t)length >= sizeof path) {
    job->error = ENAMETOOLONG;
    job->syscall = "open";
    return false;
  }
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return true;
  if (fd < 0) {
    job->error = errno;
    job->syscall = "open";
    return false;
  }
  ssize_t got = read_whole(worker, fd);
  close(fd);
  if (got >= 0 && (*now = copy_scratch(worker, (size_t)got)) != NULL) *now_length = (size_t)got;
  return false;
}

static void check_namespace(struct worker *worker, struct job *job) {
  const struct made_files *made = job->made;
  for (uint32_t i = 0; i < made->count && job->error == 0; i++) {
    if (job->file_fds[i] < 0) {
      job->unchanged[i] = made->texts[i] == NULL &&
                          still_absent(worker, job, i, &job->now[i], &job->now_lengths[i]);
      continue;
    }
    ssize_t length = read_whole(worker, job->file_fds[i]);
    if (length < 0) continue;
    job->unchanged[i] = made->texts[i] != NULL && (size_t)length == made->lengths[i] &&
                        memcmp(worker->scratch, made->texts[i], (size_t)length) == 0;
    if (!job->unchanged[i] && (job->now[i] = copy_scratch(worker, (size_t)length)) != NULL)
      job->now_lengths[i] = (size_t)length;
  }
}

static void *worker_main(void *data) {
  struct worker *worker = data;
  pthread_setname_np(pthread_self(), thread_name);
  for (;;) {
    pthread_mutex_lock(&worker->lock);
    while (worker->head == NULL && !worker->stopping)
      pthread_cond_wait(&worker->wake, &worker->lock);
    struct job *job = worker->stopping ? NULL : worker->head;
    if (job != NULL) {
      worker->head = job->next;
      if (worker->head == NULL) worker->tail = NULL;
    }
    pthread_mutex_unlock(&worker->lock);
    if (job == NULL) break;
    /* It stays at SCHED_IDLE while it waits, too: woken at normal priority, it took the
     * event loop's core from it at each check (engine medians 3-5 % above those of a worker
     * that waits at SCHED_IDLE, interleaved, at a load average of 11-13). Under such load an
     * idle worker starts later, and more checks land after the next take (about 8 in 1000
     * actions instead of 3): those actions make their own namespace. */
    if (job->idle != worker->at_idle) {
      /* Refused (a seccomp profile): the work is done at the priority the thread has. */
      struct sched_param none = {.sched_priority = 0};
      if (sched_setscheduler(0, job->idle ? SCHED_IDLE : SCHED_OTHER, &none) == 0)
        worker->at_idle = job->idle;
    }
    if (job->kind == JOB_CREATE) {
      make_namespace(worker, job);
    } else {
      check_namespace(worker, job);
    }
    /* napi_closing: the environment is going away, and its cleanup hook (which stops this
     * thread) runs before the function is gone; nobody waits for the result. */
    if (napi_call_threadsafe_function(worker->delivery, job, napi_tsfn_nonblocking) != napi_ok) {
      if (job->kind == JOB_CREATE) close_created(job);
      free_job(job);
    }
  }
  free(worker->scratch);
  return NULL;
}

static void release_worker(struct worker *worker) {
  if (--worker->references > 0) return;
  pthread_mutex_destroy(&worker->lock);
  pthread_cond_destroy(&worker->wake);
  free(worker);
}

/* Ends the worker thread (after the job under way) and frees the jobs it did not start;
 * with env, also their references (none is left to delete at the environment's teardown). */
static void stop_worker(struct worker *worker, napi_env env) {
  pthread_mutex_lock(&worker->lock);
  worker->stopping = true;
  struct job *left = worker->head;
  worker->head = worker->tail = NULL;
  pthread_cond_signal(&worker->wake);
  pthread_mutex_unlock(&worker->lock);
  pthread_join(worker->thread, NULL);
  while (left != NULL) {
    struct job *next = left->next;
    if (env != NULL && left->made_reference != NULL)
      napi_delete_reference(env, left->made_reference);
    free_job(left);
    left = next;
  }
}

static void cleanup_worker(void *data) {
  struct worker *worker = data;
  if (worker->closed) return;
  worker->closed = true;
  stop_worker(worker, NULL);
}

/* Stops the worker and lets go of the delivery: what the worker delivered before it stopped
 * is still delivered. */
static void close_worker(struct worker *worker) {
  if (worker->closed) return;
  worker->closed = true;
  napi_remove_env_cleanup_hook(worker->env, cleanup_worker, worker);
  stop_worker(worker, worker->env);
  napi_release_threadsafe_function(worker->delivery, napi_tsfn_release);
}

static void finalize_delivery(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  release_worker(data);
}

static void finalize_worker(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct worker *worker = data;
  close_worker(worker);
  release_worker(worker);
}

static void finalize_made(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free_made(data);
}

static napi_value text_value(napi_env env, const char *text, size_t length) {
  napi_value value;
  if (text == NULL) {
    napi_get_null(env, &value);
  } else {
    napi_create_string_latin1(env, text, length, &value);
  }
  return value;
}

static napi_value created_value(napi_env env, struct job *job) {
  struct made_files *made = job->made;
  napi_value result, fds, texts, external;
  napi_create_object(env, &result);
  napi_create_array_with_length(env, made->count, &fds);
  napi_create_array_with_length(env, made->count, &texts);
  for (uint32_t i = 0; i < made->count; i++) {
    napi_set_element(env, fds, i, make_int32(env, job->file_fds[i]));
    napi_set_element(env, texts, i, text_value(env, made->texts[i], made->lengths[i]));
  }
  if (napi_create_external(env, made, finalize_made, NULL, &external) != napi_ok) return NULL;
  job->made = NULL;
  napi_set_named_property(env, result, "fd", make_int32(env, job->namespace_fd));
  napi_set_named_property(env, result, "sysfs", make_int32(env, job->sysfs));
  napi_set_named_property(env, result, "fileFds", fds);
  napi_set_named_property(env, result, "files", texts);
  napi_set_named_property(env, result, "made", external);
  return result;
}

static napi_value checked_value(napi_env env, struct job *job) {
  napi_value result, same;
  napi_get_boolean(env, true, &same);
  napi_create_array_with_length(env, job->made->count, &result);
  for (uint32_t i = 0; i < job->made->count; i++)
    napi_set_element(env, result, i,
                     job->unchanged[i] ? same : text_value(env, job->now[i], job->now_lengths[i]));
  return result;
}

/* On the main thread: settles the job's promise. env is NULL when the environment is torn
 * down with the delivery still queued. */
static void deliver(napi_env env, napi_value callback, void *context, void *data) {
  (void)callback;
  struct worker *worker = context;
  struct job *job = data;
  if (env == NULL) {
    if (job->kind == JOB_CREATE) close_created(job);
    free_job(job);
    return;
  }
  if (--worker->pending == 0 && !worker->closed)
    napi_unref_threadsafe_function(env, worker->delivery);
  if (job->kind == JOB_CHECK) napi_delete_reference(env, job->made_reference);
  napi_value result = NULL;
  if (job->error == 0) {
    result = job->kind == JOB_CREATE ? created_value(env, job) : checked_value(env, job);
    if (result == NULL) job->error = ENOMEM, job->syscall = "malloc";
  }
  if (result != NULL) {
    napi_resolve_deferred(env, job->deferred, result);
  } else {
    if (job->kind == JOB_CREATE) close_created(job);
    napi_value error;
    throw_system_error(env, job->error, job->syscall, job->path);
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  free_job(job);
}

/* Queues job on the worker; returns its promise. */
static napi_value submit(napi_env env, struct worker *worker, struct job *job) {
  napi_value promise;
  if (worker->closed) {
    free_job(job);
    return throw_type_error(env, "the network namespace worker is closed");
  }
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    free_job(job);
    return NULL;
  }
  if (worker->pending++ == 0) napi_ref_threadsafe_function(env, worker->delivery);
  pthread_mutex_lock(&worker->lock);
  if (worker->tail == NULL) {
    worker->head = job;
  } else {
    worker->tail->next = job;
  }
  worker->tail = job;
  pthread_cond_signal(&worker->wake);
  pthread_mutex_unlock(&worker->lock);
  return promise;
}

static bool get_worker(napi_env env, napi_value value, struct worker **worker) {
  if (napi_get_value_external(env, value, (void **)worker) != napi_ok) {
    throw_type_error(env, "expected a network namespace worker");
    return false;
  }
  return true;
}

static bool get_idle(napi_env env, napi_value value, bool *idle) {
  if (napi_get_value_bool(env, value, idle) != napi_ok) {
    throw_type_error(env, "idle must be a boolean");
    return false;
  }
  return true;
}

/* A new job of kind for count files; NULL after throwing. */
static struct job *new_job(napi_env env, enum job_kind kind, bool idle, uint32_t count) {
  struct job *job = calloc(1, sizeof *job);
  if (job != NULL) {
    job->kind = kind;
    job->idle = idle;
    job->namespace_fd = -1;
    job->sysfs = -1;
    job->file_fds = calloc(count == 0 ? 1 : count, sizeof *job->file_fds);
    job->unchanged = calloc(count == 0 ? 1 : count, sizeof *job->unchanged);
    job->now = calloc(count == 0 ? 1 : count, sizeof *job->now);
    job->now_lengths = calloc(count == 0 ? 1 : count, sizeof *job->now_lengths);
  }
  if (job == NULL || job->file_fds == NULL || job->unchanged == NULL || job->now == NULL ||
      job->now_lengths == NULL) {
    if (job != NULL) free_job(job);
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) job->file_fds[i] = -1;
  return job;
}

/* openNetworkNamespaceWorker() → worker: starts the thread that makes and checks network
 * namespaces. */
static napi_value js_open_worker(napi_env env, napi_callback_info info) {
  (void)info;
  struct worker *worker = calloc(1, sizeof *worker);
  if (worker == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  worker->env = env;
  worker->references = 1;
  pthread_mutex_init(&worker->lock, NULL);
  pthread_cond_init(&worker->wake, NULL);
  napi_value name, external;
  napi_create_string_utf8(env, "chroot-runner:networkNamespace", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, worker, finalize_delivery,
                                      worker, deliver, &worker->delivery) != napi_ok) {
    release_worker(worker);
    return NULL;
  }
  worker->references++;
  napi_unref_threadsafe_function(env, worker->delivery);
  /* The thread starts with every signal blocked (as libuv's own threads do): the runner's
   * signals are the event loop's. */
  sigset_t all, original;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &original);
  int error = pthread_create(&worker->thread, NULL, worker_main, worker);
  pthread_sigmask(SIG_SETMASK, &original, NULL);
  if (error != 0) {
    worker->closed = true;
    napi_release_threadsafe_function(worker->delivery, napi_tsfn_release);
    release_worker(worker);
    return throw_system_error(env, error, "pthread_create", NULL);
  }
  /* Added after the threadsafe function's own: run before it at teardown. */
  napi_add_env_cleanup_hook(env, cleanup_worker, worker);
  if (napi_create_external(env, worker, finalize_worker, NULL, &external) != napi_ok) {
    close_worker(worker);
    release_worker(worker);
    return NULL;
  }
  return external;
}

/* closeNetworkNamespaceWorker(worker): ends its thread, after the job under way; jobs not
 * started are dropped (their promises never settle: close once nothing is pending). */
static napi_value js_close_worker(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct worker *worker;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || !get_worker(env, argv[0], &worker)) return NULL;
  close_worker(worker);
  return make_undefined(env);
}

/* createNetworkNamespace(worker, idle, files, sysfs) → Promise<{fd, sysfs, fileFds, files,
 * made}>: an fd (close-on-exec) on a new network namespace whose loopback is up, owned by the
 * runner's user namespace; with sysfs, a detached read-only mount of a sysfs of it (-1 where
 * refused or not asked); the named files of its /proc/net opened in it (fileFds,
 * close-on-exec, -1 where absent) and what they then held (files, null where unreadable;
 * made, the same for checkNetworkNamespace). Made at SCHED_IDLE when idle. */
static napi_value js_create_network_namespace(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  struct worker *worker;
  bool idle, is_array, with_sysfs;
  uint32_t count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 4) return throw_type_error(env, "expected worker, idle, files and sysfs");
  if (!get_worker(env, argv[0], &worker) || !get_idle(env, argv[1], &idle)) return NULL;
  if (napi_get_value_bool(env, argv[3], &with_sysfs) != napi_ok)
    return throw_type_error(env, "sysfs must be a boolean");
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array)
    return throw_type_error(env, "files must be an array of strings");
  napi_get_array_length(env, argv[2], &count);
  struct job *job = new_job(env, JOB_CREATE, idle, count);
  if (job == NULL) return NULL;
  job->with_sysfs = with_sysfs;
  if ((job->made = new_made(count)) == NULL) {
    free_job(job);
    return throw_system_error(env, ENOMEM, "malloc", NULL);
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value name;
    if (napi_get_element(env, argv[2], i, &name) != napi_ok ||
        !get_string(env, name, &job->made->names[i])) {
      free_job(job);
      return NULL;
    }
    job->made->count = i + 1;
  }
  return submit(env, worker, job);
}

/* checkNetworkNamespace(worker, fd, fileFds, made, idle) → Promise<(true | string | null)[]>:
 * per file of a namespace made by createNetworkNamespace, true where it reads as when made,
 * else what it holds now (null: unreadable). fd and fileFds must stay open until the
 * promise settles. */
static napi_value js_check_network_namespace(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  struct worker *worker;
  struct made_files *made;
  int32_t namespace_fd;
  bool idle, is_array;
  uint32_t count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 5) return throw_type_error(env, "expected worker, fd, fileFds, made and idle");
  if (!get_worker(env, argv[0], &worker) || !get_int32(env, argv[1], &namespace_fd) ||
      !get_idle(env, argv[4], &idle))
    return NULL;
  if (napi_get_value_external(env, argv[3], (void **)&made) != napi_ok)
    return throw_type_error(env, "made must be what createNetworkNamespace gave");
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[2], &count) != napi_ok || count != made->count)
    return throw_type_error(env, "fileFds must be those createNetworkNamespace gave");
  struct job *job = new_job(env, JOB_CHECK, idle, count);
  if (job == NULL) return NULL;
  job->made = made;
  job->namespace_fd = namespace_fd;
  for (uint32_t i = 0; i < count; i++) {
    napi_value fd;
    if (napi_get_element(env, argv[2], i, &fd) != napi_ok ||
        !get_int32(env, fd, &job->file_fds[i])) {
      free_job(job);
      return NULL;
    }
  }
  if (napi_create_reference(env, argv[3], 1, &job->made_reference) != napi_ok) {
    free_job(job);
    return NULL;
  }
  return submit(env, worker, job);
}

bool register_network_namespace(napi_env env, napi_value exports) {
  return export_function(env, exports, "openNetworkNamespaceWorker", js_open_worker) &&
         export_function(env, exports, "closeNetworkNamespaceWorker", js_close_worker) &&
         export_function(env, exports, "createNetworkNamespace", js_create_network_namespace) &&
         export_function(env, exports, "checkNetworkNamespace", js_check_network_namespace);
}
