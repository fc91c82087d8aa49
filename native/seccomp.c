/* Compiling a seccomp filter with libseccomp, loaded at run time (dlopen of the runtime
 * library libseccomp.so.2), so that the addon builds without libseccomp's headers. The policy
 * (which syscalls, which errno, which argument conditions) comes from TypeScript
 * (src/sandbox/seccomp.ts); this only turns it into a BPF program, which the child of a spawn
 * loads right before exec (native/spawn.c, OP_SECCOMP). */
#include "errors.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* libseccomp's stable ABI (seccomp.h of libseccomp 2.x): declared here, not included. */
typedef void *scmp_filter_ctx;
struct scmp_arg_cmp {
  unsigned int arg;
  int op; /* enum scmp_compare */
  uint64_t datum_a;
  uint64_t datum_b;
};
#define SCMP_ACT_ALLOW 0x7fff0000U
#define SCMP_ACT_ERRNO(x) (0x00050000U | ((x)&0x0000ffffU))
#define SCMP_ERROR_SYSCALL (-1) /* __NR_SCMP_ERROR */
/* enum scmp_filter_attr: SCMP_FLTATR_ACT_BADARCH, the action for a call of an architecture
 * the filter does not cover; SCMP_FLTATR_CTL_OPTIMIZE (libseccomp 2.5): 2 sorts each
 * architecture's syscall numbers into a binary tree instead of a list. */
#define SCMP_FLTATR_ACT_BADARCH 2
#define SCMP_FLTATR_CTL_OPTIMIZE 8

struct libseccomp {
  scmp_filter_ctx (*init)(uint32_t def_action);
  void (*release)(scmp_filter_ctx ctx);
  int (*arch_add)(scmp_filter_ctx ctx, uint32_t arch_token);
  uint32_t (*arch_resolve_name)(const char *arch_name);
  int (*syscall_resolve_name)(const char *name);
  int (*rule_add_array)(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                        const struct scmp_arg_cmp *arg_array);
  int (*export_bpf)(const scmp_filter_ctx ctx, int fd);
  int (*attr_set)(scmp_filter_ctx ctx, int attr, uint32_t value);
};

static struct libseccomp library;
static const char *library_error;

/* Loads libseccomp once; false (library_error says why) when it is not installed. */
static bool load_library(void) {
  if (library.init != NULL) return true;
  void *handle = dlopen("libseccomp.so.2", RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    library_error = dlerror();
    return false;
  }
  struct libseccomp loaded = {
      .init = (scmp_filter_ctx(*)(uint32_t))dlsym(handle, "seccomp_init"),
      .release = (void (*)(scmp_filter_ctx))dlsym(handle, "seccomp_release"),
      .arch_add = (int (*)(scmp_filter_ctx, uint32_t))dlsym(handle, "seccomp_arch_add"),
      .arch_resolve_name = (uint32_t(*)(const char *))dlsym(handle, "seccomp_arch_resolve_name"),
      .syscall_resolve_name = (int (*)(const char *))dlsym(handle, "seccomp_syscall_resolve_name"),
      .rule_add_array =
          (int (*)(scmp_filter_ctx, uint32_t, int, unsigned int, const struct scmp_arg_cmp *))dlsym(
              handle, "seccomp_rule_add_array"),
      .export_bpf = (int (*)(const scmp_filter_ctx, int))dlsym(handle, "seccomp_export_bpf"),
      .attr_set = (int (*)(scmp_filter_ctx, int, uint32_t))dlsym(handle, "seccomp_attr_set"),
  };
  if (loaded.init == NULL || loaded.release == NULL || loaded.arch_add == NULL ||
      loaded.arch_resolve_name == NULL || loaded.syscall_resolve_name == NULL ||
      loaded.rule_add_array == NULL || loaded.export_bpf == NULL || loaded.attr_set == NULL) {
    library_error = "libseccomp.so.2 lacks a function chroot-runner needs";
    dlclose(handle);
    return false;
  }
  library = loaded;
  return true;
}

enum { MAX_CONDITIONS = 6, MAX_NAME = 64 };

static bool get_named(napi_env env, napi_value object, const char *name, napi_value *out) {
  return napi_get_named_property(env, object, name, out) == napi_ok;
}

static bool get_uint32_at(napi_env env, napi_value array, uint32_t index, uint32_t *out) {
  napi_value value;
  return napi_get_element(env, array, index, &value) == napi_ok &&
         napi_get_value_uint32(env, value, out) == napi_ok;
}

static bool get_uint64_at(napi_env env, napi_value array, uint32_t index, uint64_t *out) {
  napi_value value;
  bool lossless;
  return napi_get_element(env, array, index, &value) == napi_ok &&
         napi_get_value_bigint_uint64(env, value, out, &lossless) == napi_ok;
}

/* Adds one rule: { syscall, number, errno, conditions: [[argument, op, a, b]...] }. A name
 * libseccomp does not know (a syscall newer than it) falls back to `number`, the native one,
 * when given (-1 otherwise: the rule is skipped and the name returned in `unknown`). */
static int add_rule(napi_env env, scmp_filter_ctx filter, napi_value rule, bool *skipped,
                    char *name) {
  napi_value value, conditions;
  size_t length;
  int32_t number, errno_value;
  uint32_t condition_count;
  if (!get_named(env, rule, "syscall", &value) ||
      napi_get_value_string_utf8(env, value, name, MAX_NAME, &length) != napi_ok ||
      !get_named(env, rule, "number", &value) ||
      napi_get_value_int32(env, value, &number) != napi_ok ||
      !get_named(env, rule, "errno", &value) ||
      napi_get_value_int32(env, value, &errno_value) != napi_ok ||
      !get_named(env, rule, "conditions", &conditions) ||
      napi_get_array_length(env, conditions, &condition_count) != napi_ok ||
      condition_count > MAX_CONDITIONS)
    return -EINVAL;
  int syscall_number = library.syscall_resolve_name(name);
  if (syscall_number == SCMP_ERROR_SYSCALL) syscall_number = number;
  if (syscall_number < 0) {
    *skipped = true;
    return 0;
  }
  struct scmp_arg_cmp compare[MAX_CONDITIONS];
  for (uint32_t i = 0; i < condition_count; i++) {
    napi_value condition;
    uint32_t argument, op;
    if (napi_get_element(env, conditions, i, &condition) != napi_ok ||
        !get_uint32_at(env, condition, 0, &argument) || !get_uint32_at(env, condition, 1, &op) ||
        !get_uint64_at(env, condition, 2, &compare[i].datum_a) ||
        !get_uint64_at(env, condition, 3, &compare[i].datum_b))
      return -EINVAL;
    compare[i].arg = argument;
    compare[i].op = (int)op;
  }
  return library.rule_add_array(filter, SCMP_ACT_ERRNO((uint32_t)errno_value), syscall_number,
                                condition_count, compare);
}

/* Reads the exported program back from the memfd it was written to (libseccomp 2.5 exports
 * to an fd only). */
static napi_value read_program(napi_env env, int fd) {
  struct stat status;
  if (fstat(fd, &status) < 0) return throw_system_error(env, errno, "fstat", NULL);
  napi_value buffer;
  void *data;
  if (napi_create_buffer(env, (size_t)status.st_size, &data, &buffer) != napi_ok) return NULL;
  ssize_t done = 0;
  while (done < status.st_size) {
    ssize_t n = pread(fd, (char *)data + done, (size_t)(status.st_size - done), done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return throw_system_error(env, n < 0 ? errno : EIO, "pread", NULL);
    done += n;
  }
  return buffer;
}

/* compileSeccompFilter({ architectures, rules, otherArchitectureErrno }) → { program: Buffer,
 * unknown: string[], tree: boolean }: every syscall allowed but those of `rules`, which fail
 * with their errno, and those of any other architecture, which fail with
 * otherArchitectureErrno; tree says whether the syscall numbers are a binary tree (libseccomp
 * 2.5+). Throws ELIBACC (with libseccomp's loader message) when libseccomp is missing. */
static napi_value js_compile_seccomp_filter(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], architectures, rules, value;
  int32_t other_errno;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || !get_named(env, argv[0], "architectures", &architectures) ||
      !get_named(env, argv[0], "rules", &rules) ||
      !get_named(env, argv[0], "otherArchitectureErrno", &value) ||
      napi_get_value_int32(env, value, &other_errno) != napi_ok)
    return throw_type_error(env,
                            "compileSeccompFilter({ architectures, rules, otherArchitectureErrno })");
  if (!load_library()) return throw_system_error(env, ELIBACC, "dlopen", library_error);
  scmp_filter_ctx filter = library.init(SCMP_ACT_ALLOW);
  if (filter == NULL) return throw_system_error(env, ENOMEM, "seccomp_init", NULL);
  int set = library.attr_set(filter, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO((uint32_t)other_errno));
  if (set < 0) {
    library.release(filter);
    return throw_system_error(env, -set, "seccomp_attr_set", "SCMP_FLTATR_ACT_BADARCH");
  }
  /* At every load the kernel runs the program for each syscall number of the native and the
   * compat architecture (seccomp_cache_prepare, 5.11+), and the list's length was most of an
   * action's filter load: the tree shortens every path to a few comparisons. A libseccomp
   * before 2.5 refuses the attribute, and emits the list. */
  bool tree = library.attr_set(filter, SCMP_FLTATR_CTL_OPTIMIZE, 2) == 0;
  napi_value result = NULL, unknown;
  int fd = -1;
  uint32_t count;
  napi_create_array(env, &unknown);
  uint32_t unknown_count = 0;
  if (napi_get_array_length(env, architectures, &count) != napi_ok) goto done;
  for (uint32_t i = 0; i < count; i++) {
    char name[MAX_NAME];
    size_t length;
    napi_value value;
    if (napi_get_element(env, architectures, i, &value) != napi_ok ||
        napi_get_value_string_utf8(env, value, name, sizeof name, &length) != napi_ok)
      goto done;
    uint32_t token = library.arch_resolve_name(name);
    int added = token == 0 ? -EINVAL : library.arch_add(filter, token);
    if (added < 0 && added != -EEXIST) {
      throw_system_error(env, -added, "seccomp_arch_add", name);
      goto done;
    }
  }
  if (napi_get_array_length(env, rules, &count) != napi_ok) goto done;
  for (uint32_t i = 0; i < count; i++) {
    napi_value rule;
    char name[MAX_NAME] = "";
    bool skipped = false;
    if (napi_get_element(env, rules, i, &rule) != napi_ok) goto done;
    int added = add_rule(env, filter, rule, &skipped, name);
    if (added < 0) {
      throw_system_error(env, -added, "seccomp_rule_add", name);
      goto done;
    }
    if (skipped) {
      napi_value text;
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &text);
      napi_set_element(env, unknown, unknown_count++, text);
    }
  }
  fd = memfd_create("chroot-runner-seccomp", MFD_CLOEXEC);
  if (fd < 0) {
    throw_system_error(env, errno, "memfd_create", NULL);
    goto done;
  }
  int exported = library.export_bpf(filter, fd);
  if (exported < 0) {
    throw_system_error(env, -exported, "seccomp_export_bpf", NULL);
    goto done;
  }
  napi_value program = read_program(env, fd);
  if (program == NULL) goto done;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "program", program);
  napi_set_named_property(env, result, "unknown", unknown);
  napi_value tree_value;
  napi_get_boolean(env, tree, &tree_value);
  napi_set_named_property(env, result, "tree", tree_value);
done:
  if (fd >= 0) close(fd);
  library.release(filter);
  return result;
}

/* x32SystemCalls() → whether this kernel runs x32 system calls (x86_64 numbers with bit 30,
 * CONFIG_X86_X32_ABI): a child makes one (getpid) and exits 0 if it ran, 1 if it failed. In
 * a child, since a seccomp filter the runner runs under may kill the caller instead. True
 * unless the child said it failed (not made, killed, not waited for): the filter then covers
 * x32 as if it ran. */
static napi_value js_x32_system_calls(napi_env env, napi_callback_info info) {
  (void)info;
  bool runs = false;
#ifdef __x86_64__
  pid_t child = fork();
  if (child == 0) _exit(syscall(0x40000000L | SYS_getpid) > 0 ? 0 : 1);
  int status = 0;
  while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  runs = child < 0 || !WIFEXITED(status) || WEXITSTATUS(status) == 0;
#endif
  napi_value result;
  napi_get_boolean(env, runs, &result);
  return result;
}

bool register_seccomp(napi_env env, napi_value exports) {
  return export_function(env, exports, "compileSeccompFilter", js_compile_seccomp_filter) &&
         export_function(env, exports, "x32SystemCalls", js_x32_system_calls);
}
