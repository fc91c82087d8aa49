/* Watching an action's exit without blocking the event loop, and signalling it: both through
 * its pidfd. */
#include "errors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* The env's exit watcher: one epoll instance holding every watched pidfd (EPOLLONESHOT),
 * polled by one uv_poll. A watch then costs one epoll_ctl, where a uv_poll of its own on the
 * pidfd cost six system calls (libuv checks, registers and unregisters each fd) and a
 * handle to close. Made when the addon loads, so that its fd is there before any count of
 * the runner's fds. */
struct exit_watcher {
  uv_poll_t poll;
  int epoll_fd;
  /* Watches not yet settled: the poll keeps the loop alive while there are any. */
  size_t pending;
};

struct exit_watch {
  struct exit_watcher *watcher;
  napi_env env;
  napi_deferred deferred;
  /* The caller's report array (errors.h), also the async resource of the callback. */
  napi_ref report;
  napi_async_context async_context;
  pid_t pid;
  int pidfd;
  int status_fd;
};

/* Fills the report: whether the process exited (1) or was killed (0), its exit code or signal,
 * and the words the init wrote to its status pipe before it exited, pairs of int32 (kind,
 * value): their count, then the words. */
static void fill_report(struct exit_watch *watch, int32_t *words, int status) {
  words[0] = WIFEXITED(status);
  words[1] = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  ssize_t length = 0;
  if (watch->status_fd >= 0) {
    do {
      length = read(watch->status_fd, words + REPORT_HEADER_WORDS,
                    REPORT_STATUS_WORDS * sizeof(int32_t));
    } while (length < 0 && errno == EINTR);
    if (length < 0) length = 0;
  }
  words[2] = (int32_t)((size_t)length / sizeof(int32_t));
}

/* Watches the pidfd for one readiness (EPOLLONESHOT): its process's exit. */
static int arm_watch(struct exit_watch *watch, int operation) {
  struct epoll_event event = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = watch};
  return epoll_ctl(watch->watcher->epoll_fd, operation, watch->pidfd, &event);
}

/* The watch's pidfd polled readable: reaps the process and settles the promise, or watches
 * on if it has not exited after all. */
static void settle_watch(struct exit_watch *watch) {
  napi_env env = watch->env;
  int status = 0;
  pid_t reaped;
  do {
    reaped = wait4(watch->pid, &status, WNOHANG | __WALL, NULL);
  } while (reaped < 0 && errno == EINTR);
  int err = reaped < 0 ? errno : 0;
  if (reaped == 0) {
    if (arm_watch(watch, EPOLL_CTL_MOD) == 0) return;
    err = errno;
  }
  struct exit_watcher *watcher = watch->watcher;
  if (--watcher->pending == 0) uv_unref((uv_handle_t *)&watcher->poll);

  napi_handle_scope handle_scope;
  napi_callback_scope callback_scope;
  napi_value report, outcome;
  napi_open_handle_scope(env, &handle_scope);
  napi_get_reference_value(env, watch->report, &report);
  /* A callback scope makes Node run the promise's continuations when it closes: they may
   * close the pidfd, which leaves the epoll instance with it. */
  napi_open_callback_scope(env, report, watch->async_context, &callback_scope);
  if (err != 0) {
    throw_system_error(env, err, reaped == 0 ? "epoll_ctl" : "wait4", NULL);
    napi_get_and_clear_last_exception(env, &outcome);
    napi_reject_deferred(env, watch->deferred, outcome);
  } else {
    int32_t *words = report_words(env, report);
    if (words != NULL) fill_report(watch, words, status);
    napi_resolve_deferred(env, watch->deferred, make_undefined(env));
  }
  napi_close_callback_scope(env, callback_scope);
  napi_async_destroy(env, watch->async_context);
  napi_delete_reference(env, watch->report);
  napi_close_handle_scope(env, handle_scope);
  free(watch);
}

/* An error of the poll (its fd closed) shows in epoll_wait, which then settles nothing. */
static void on_watcher_readable(uv_poll_t *poll, int uv_status, int events) {
  (void)uv_status;
  (void)events;
  struct exit_watcher *watcher = poll->data;
  struct epoll_event ready[16];
  int count;
  do {
    count = epoll_wait(watcher->epoll_fd, ready, 16, 0);
    for (int i = 0; i < count; i++) settle_watch(ready[i].data.ptr);
  } while (count == 16 || (count < 0 && errno == EINTR));
}

/* watchExit(pidfd, pid, statusFd, report) → Promise<undefined>: waits for the process to exit
 * (its pidfd in the exit watcher), reaps it and reads what it wrote to the status pipe, into
 * `report` (fill_report). The caller keeps ownership of both fds and must not close them
 * before the promise settles. */
static napi_value js_watch_exit(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 4) return throw_type_error(env, "watchExit(pidfd, pid, statusFd, report)");
  int32_t pidfd, pid, status_fd;
  if (!get_int32(env, argv[0], &pidfd) || !get_int32(env, argv[1], &pid) ||
      !get_int32(env, argv[2], &status_fd) || report_words(env, argv[3]) == NULL)
    return NULL;
  struct exit_watcher *watcher;
  if (napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&watcher) != napi_ok) return NULL;
  struct exit_watch *watch = calloc(1, sizeof *watch);
  if (watch == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  watch->watcher = watcher;
  watch->env = env;
  watch->pid = pid;
  watch->pidfd = pidfd;
  watch->status_fd = status_fd;
  if (arm_watch(watch, EPOLL_CTL_ADD) < 0) {
    int err = errno;
    free(watch);
    return throw_system_error(env, err, "epoll_ctl", NULL);
  }
  if (watcher->pending++ == 0) uv_ref((uv_handle_t *)&watcher->poll);
  napi_value promise, name;
  napi_create_string_utf8(env, "chroot-runner:watchExit", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[3], 1, &watch->report);
  napi_async_init(env, argv[3], name, &watch->async_context);
  napi_create_promise(env, &watch->deferred, &promise);
  return promise;
}

/* pidfdSendSignal(pidfd, signal) → true, or false when the process has already exited. */
static napi_value js_pidfd_send_signal(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t pidfd, sig;
  if (argc < 2 || !get_int32(env, argv[0], &pidfd) || !get_int32(env, argv[1], &sig)) {
    return argc < 2 ? throw_type_error(env, "pidfdSendSignal(pidfd, signal)") : NULL;
  }
  napi_value result;
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0) {
    if (errno != ESRCH) return throw_system_error(env, errno, "pidfd_send_signal", NULL);
    napi_get_boolean(env, false, &result);
    return result;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

static void close_watcher(uv_handle_t *handle) {
  struct exit_watcher *watcher = handle->data;
  close(watcher->epoll_fd);
  free(watcher);
}

static void stop_watcher(void *data) {
  struct exit_watcher *watcher = data;
  uv_close((uv_handle_t *)&watcher->poll, close_watcher);
}

/* The env's exit watcher, unreferenced until a watch is pending; NULL after throwing. */
static struct exit_watcher *start_watcher(napi_env env) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  struct exit_watcher *watcher = calloc(1, sizeof *watcher);
  if (watcher == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  watcher->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (watcher->epoll_fd < 0) {
    throw_system_error(env, errno, "epoll_create1", NULL);
    free(watcher);
    return NULL;
  }
  int uv_result = uv_poll_init(loop, &watcher->poll, watcher->epoll_fd);
  if (uv_result != 0) {
    throw_system_error(env, -uv_result, "uv_poll_init", NULL);
    close(watcher->epoll_fd);
    free(watcher);
    return NULL;
  }
  watcher->poll.data = watcher;
  uv_result = uv_poll_start(&watcher->poll, UV_READABLE, on_watcher_readable);
  if (uv_result != 0) {
    throw_system_error(env, -uv_result, "uv_poll_start", NULL);
    stop_watcher(watcher);
    return NULL;
  }
  uv_unref((uv_handle_t *)&watcher->poll);
  if (napi_add_env_cleanup_hook(env, stop_watcher, watcher) != napi_ok) {
    stop_watcher(watcher);
    return NULL;
  }
  return watcher;
}

bool register_exit_watch(napi_env env, napi_value exports) {
  struct exit_watcher *watcher = start_watcher(env);
  napi_value watch_exit;
  return watcher != NULL &&
         napi_create_function(env, "watchExit", NAPI_AUTO_LENGTH, js_watch_exit, watcher,
                              &watch_exit) == napi_ok &&
         napi_set_named_property(env, exports, "watchExit", watch_exit) == napi_ok &&
         napi_set_named_property(env, exports, "reportWords", make_int32(env, REPORT_WORDS)) ==
             napi_ok &&
         export_function(env, exports, "pidfdSendSignal", js_pidfd_send_signal);
}
