/* Thin wrappers of the mount and path syscalls. No policy lives here: flags come from
 * TypeScript (src/syscalls/constants.ts), except that every fd created here is close-on-exec.
 * A directory fd argument of -100 (AT_FDCWD) means the current directory. */
#include "errors.h"
#include "openat2.h"
#include "syscall-numbers.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

#define MAX_ARGS 7

/* Reads the callback's arguments; returns false (after throwing) when fewer than `count`
 * were given. */
static bool get_args(napi_env env, napi_callback_info info, size_t count, napi_value *args) {
  size_t given = MAX_ARGS;
  napi_value all[MAX_ARGS];
  if (napi_get_cb_info(env, info, &given, all, NULL, NULL) != napi_ok) return false;
  if (given < count) {
    throw_type_error(env, "too few arguments");
    return false;
  }
  memcpy(args, all, count * sizeof *args);
  return true;
}

/* Returns a new fd, or throws the error of a failed syscall (result < 0). */
static napi_value fd_or_throw(napi_env env, long result, const char *syscall, const char *path) {
  if (result < 0) return throw_system_error(env, errno, syscall, path);
  return make_int32(env, (int32_t)result);
}

static napi_value nothing_or_throw(napi_env env, long result, const char *syscall,
                                   const char *path) {
  if (result < 0) return throw_system_error(env, errno, syscall, path);
  return make_undefined(env);
}

/* fsopen(fstype, flags) → fd */
static napi_value js_fsopen(napi_env env, napi_callback_info info) {
  napi_value args[2];
  char *fstype;
  uint32_t flags;
  if (!get_args(env, info, 2, args) || !get_uint32(env, args[1], &flags) ||
      !get_string(env, args[0], &fstype))
    return NULL;
  long fd = syscall(SYS_fsopen, fstype, flags | FSOPEN_CLOEXEC);
  napi_value result = fd_or_throw(env, fd, "fsopen", fstype);
  free(fstype);
  return result;
}

/* fsconfig(fd, command, key, value, aux): key is a string or null; value is a string, a
 * Buffer (FSCONFIG_SET_BINARY, whose length becomes aux) or null. Path-valued commands report
 * the value as the error's path. */
static napi_value js_fsconfig(napi_env env, napi_callback_info info) {
  napi_value args[5];
  int32_t fd, command, aux;
  char *key = NULL, *string_value = NULL;
  void *value = NULL;
  napi_value result = NULL;
  if (!get_args(env, info, 5, args) || !get_int32(env, args[0], &fd) ||
      !get_int32(env, args[1], &command) || !get_int32(env, args[4], &aux) ||
      !get_optional_string(env, args[2], &key))
    return NULL;
  bool is_buffer = false;
  napi_is_buffer(env, args[3], &is_buffer);
  if (is_buffer) {
    if (command != FSCONFIG_SET_BINARY) {
      throw_type_error(env, "only FSCONFIG_SET_BINARY takes a Buffer");
      goto out;
    }
    size_t length;
    if (napi_get_buffer_info(env, args[3], &value, &length) != napi_ok) goto out;
    aux = (int32_t)length;
  } else {
    if (!get_optional_string(env, args[3], &string_value)) goto out;
    value = string_value;
  }
  long status = syscall(SYS_fsconfig, fd, command, key, value, aux);
  bool is_path = command == FSCONFIG_SET_PATH || command == FSCONFIG_SET_PATH_EMPTY;
  result = nothing_or_throw(env, status, "fsconfig", is_path ? string_value : key);
out:
  free(key);
  free(string_value);
  return result;
}

/* fsmount(fd, flags, attributes) → mount fd */
static napi_value js_fsmount(napi_env env, napi_callback_info info) {
  napi_value args[3];
  int32_t fd;
  uint32_t flags, attributes;
  if (!get_args(env, info, 3, args) || !get_int32(env, args[0], &fd) ||
      !get_uint32(env, args[1], &flags) || !get_uint32(env, args[2], &attributes))
    return NULL;
  return fd_or_throw(env, syscall(SYS_fsmount, fd, flags | FSMOUNT_CLOEXEC, attributes),
                     "fsmount", NULL);
}

/* move_mount(fromDirFd, fromPath, toDirFd, toPath, flags); the error names toPath, or
 * fromPath when toPath is empty, or nothing when both are. */
static napi_value js_move_mount(napi_env env, napi_callback_info info) {
  napi_value args[5];
  int32_t from_fd, to_fd;
  uint32_t flags;
  char *from_path = NULL, *to_path = NULL;
  napi_value result = NULL;
  if (!get_args(env, info, 5, args) || !get_int32(env, args[0], &from_fd) ||
      !get_int32(env, args[2], &to_fd) || !get_uint32(env, args[4], &flags) ||
      !get_string(env, args[1], &from_path))
    return NULL;
  if (get_string(env, args[3], &to_path)) {
    long status = syscall(SYS_move_mount, from_fd, from_path, to_fd, to_path, flags);
    const char *named = to_path[0] != '\0' ? to_path : from_path[0] != '\0' ? from_path : NULL;
    result = nothing_or_throw(env, status, "move_mount", named);
  }
  free(from_path);
  free(to_path);
  return result;
}

/* The shape of open_tree and fspick: (dirFd, path, flags) → fd, with CLOEXEC added. */
static napi_value path_flags_to_fd(napi_env env, napi_callback_info info, long number,
                                   uint32_t cloexec, const char *name) {
  napi_value args[3];
  int32_t dir_fd;
  uint32_t flags;
  char *path;
  if (!get_args(env, info, 3, args) || !get_int32(env, args[0], &dir_fd) ||
      !get_uint32(env, args[2], &flags) || !get_string(env, args[1], &path))
    return NULL;
  long fd = syscall(number, dir_fd, path, flags | cloexec);
  napi_value result = fd_or_throw(env, fd, name, path);
  free(path);
  return result;
}

/* open_tree(dirFd, path, flags) → fd */
static napi_value js_open_tree(napi_env env, napi_callback_info info) {
  return path_flags_to_fd(env, info, SYS_open_tree, OPEN_TREE_CLOEXEC, "open_tree");
}

/* fspick(dirFd, path, flags) → a filesystem context for reconfiguring a mounted superblock */
static napi_value js_fspick(napi_env env, napi_callback_info info) {
  return path_flags_to_fd(env, info, SYS_fspick, FSPICK_CLOEXEC, "fspick");
}

/* mount_setattr(dirFd, path, flags, attrSet, attrClear, propagation, userNamespaceFd) */
static napi_value js_mount_setattr(napi_env env, napi_callback_info info) {
  napi_value args[7];
  int32_t dir_fd;
  uint32_t flags;
  uint64_t attr_set, attr_clear, propagation, user_namespace_fd;
  char *path;
  if (!get_args(env, info, 7, args) || !get_int32(env, args[0], &dir_fd) ||
      !get_uint32(env, args[2], &flags) || !get_uint64(env, args[3], &attr_set) ||
      !get_uint64(env, args[4], &attr_clear) || !get_uint64(env, args[5], &propagation) ||
      !get_uint64(env, args[6], &user_namespace_fd) || !get_string(env, args[1], &path))
    return NULL;
  struct mount_attr attr = {.attr_set = attr_set,
                            .attr_clr = attr_clear,
                            .propagation = propagation,
                            .userns_fd = user_namespace_fd};
  long status = syscall(SYS_mount_setattr, dir_fd, path, flags, &attr, sizeof attr);
  napi_value result = nothing_or_throw(env, status, "mount_setattr", path);
  free(path);
  return result;
}

/* openat2(dirFd, path, flags, mode, resolve) → fd */
static napi_value js_openat2(napi_env env, napi_callback_info info) {
  napi_value args[5];
  int32_t dir_fd;
  uint32_t flags, mode, resolve;
  char *path;
  if (!get_args(env, info, 5, args) || !get_int32(env, args[0], &dir_fd) ||
      !get_uint32(env, args[2], &flags) || !get_uint32(env, args[3], &mode) ||
      !get_uint32(env, args[4], &resolve) || !get_string(env, args[1], &path))
    return NULL;
  struct open_how how = {.flags = flags | O_CLOEXEC, .mode = mode, .resolve = resolve};
  long fd = openat2_retrying(dir_fd, path, &how);
  napi_value result = fd_or_throw(env, fd, "openat2", path);
  free(path);
  return result;
}

/* mkdirat(dirFd, path, mode) */
static napi_value js_mkdirat(napi_env env, napi_callback_info info) {
  napi_value args[3];
  int32_t dir_fd;
  uint32_t mode;
  char *path;
  if (!get_args(env, info, 3, args) || !get_int32(env, args[0], &dir_fd) ||
      !get_uint32(env, args[2], &mode) || !get_string(env, args[1], &path))
    return NULL;
  napi_value result = nothing_or_throw(env, mkdirat(dir_fd, path, mode), "mkdirat", path);
  free(path);
  return result;
}

/* mknodat(dirFd, path, mode, major, minor) */
static napi_value js_mknodat(napi_env env, napi_callback_info info) {
  napi_value args[5];
  int32_t dir_fd;
  uint32_t mode, major_number, minor_number;
  char *path;
  if (!get_args(env, info, 5, args) || !get_int32(env, args[0], &dir_fd) ||
      !get_uint32(env, args[2], &mode) || !get_uint32(env, args[3], &major_number) ||
      !get_uint32(env, args[4], &minor_number) || !get_string(env, args[1], &path))
    return NULL;
  int status = mknodat(dir_fd, path, mode, makedev(major_number, minor_number));
  napi_value result = nothing_or_throw(env, status, "mknodat", path);
  free(path);
  return result;
}

/* symlinkat(target, dirFd, path) */
static napi_value js_symlinkat(napi_env env, napi_callback_info info) {
  napi_value args[3];
  int32_t dir_fd;
  char *target = NULL, *path = NULL;
  napi_value result = NULL;
  if (!get_args(env, info, 3, args) || !get_int32(env, args[1], &dir_fd) ||
      !get_string(env, args[0], &target))
    return NULL;
  if (get_string(env, args[2], &path))
    result = nothing_or_throw(env, symlinkat(target, dir_fd, path), "symlinkat", path);
  free(target);
  free(path);
  return result;
}

/* unlinkat(dirFd, path, flags) */
static napi_value js_unlinkat(napi_env env, napi_callback_info info) {
  napi_value args[3];
  int32_t dir_fd, flags;
  char *path;
  if (!get_args(env, info, 3, args) || !get_int32(env, args[0], &dir_fd) ||
      !get_int32(env, args[2], &flags) || !get_string(env, args[1], &path))
    return NULL;
  napi_value result = nothing_or_throw(env, unlinkat(dir_fd, path, flags), "unlinkat", path);
  free(path);
  return result;
}

/* Positions in the Float64Array that statx fills; mirrored in src/syscalls/index.ts. */
enum {
  STAT_MASK,
  STAT_ATTRIBUTES,
  STAT_MODE,
  STAT_UID,
  STAT_GID,
  STAT_NLINK,
  STAT_INO,
  STAT_SIZE,
  STAT_DEV_MAJOR,
  STAT_DEV_MINOR,
  STAT_RDEV_MAJOR,
  STAT_RDEV_MINOR,
  STAT_MOUNT_ID,
  STAT_FIELDS
};

/* statx(dirFd, path, flags, mask, out: Float64Array(13)); the mount id is -1 when the kernel
 * did not report one. */
static napi_value js_statx(napi_env env, napi_callback_info info) {
  napi_value args[5];
  int32_t dir_fd, flags;
  uint32_t mask;
  napi_typedarray_type type;
  size_t length;
  void *data;
  char *path;
  if (!get_args(env, info, 5, args) || !get_int32(env, args[0], &dir_fd) ||
      !get_int32(env, args[2], &flags) || !get_uint32(env, args[3], &mask))
    return NULL;
  if (napi_get_typedarray_info(env, args[4], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || length < STAT_FIELDS)
    return throw_type_error(env, "expected a Float64Array of 13 elements");
  if (!get_string(env, args[1], &path)) return NULL;
  struct statx status;
  if (syscall(SYS_statx, dir_fd, path, flags, mask | STATX_MNT_ID, &status) < 0) {
    napi_value error = throw_system_error(env, errno, "statx", path);
    free(path);
    return error;
  }
  free(path);
  double *out = data;
  out[STAT_MASK] = status.stx_mask;
  out[STAT_ATTRIBUTES] = (double)status.stx_attributes;
  out[STAT_MODE] = status.stx_mode;
  out[STAT_UID] = status.stx_uid;
  out[STAT_GID] = status.stx_gid;
  out[STAT_NLINK] = status.stx_nlink;
  out[STAT_INO] = (double)status.stx_ino;
  out[STAT_SIZE] = (double)status.stx_size;
  out[STAT_DEV_MAJOR] = status.stx_dev_major;
  out[STAT_DEV_MINOR] = status.stx_dev_minor;
  out[STAT_RDEV_MAJOR] = status.stx_rdev_major;
  out[STAT_RDEV_MINOR] = status.stx_rdev_minor;
  out[STAT_MOUNT_ID] = (status.stx_mask & STATX_MNT_ID) ? (double)status.stx_mnt_id : -1;
  return make_undefined(env);
}

/* listmount(2) and statmount(2) (Linux >= 6.8): the mount table without parsing
 * /proc/self/mountinfo. Old headers lack their structures, so the published layouts are
 * declared here; fields are only ever appended to them. */
struct mount_id_request {
  uint32_t size;
  uint32_t spare;
  uint64_t mnt_id;
  uint64_t param;
};

struct mount_status {
  uint32_t size;
  uint32_t mnt_opts;
  uint64_t mask;
  uint32_t sb_dev_major;
  uint32_t sb_dev_minor;
  uint64_t sb_magic;
  uint32_t sb_flags;
  uint32_t fs_type;
  uint64_t mnt_id;
  uint64_t mnt_parent_id;
  uint32_t mnt_id_old;
  uint32_t mnt_parent_id_old;
  uint64_t mnt_attr;
  uint64_t mnt_propagation;
  uint64_t mnt_peer_group;
  uint64_t mnt_master;
  uint64_t propagate_from;
  uint32_t mnt_root;
  uint32_t mnt_point;
  uint64_t mnt_ns_id;
  uint32_t fs_subtype;
  uint32_t sb_source;
  uint32_t opt_num;
  uint32_t opt_array;
  uint32_t opt_sec_num;
  uint32_t opt_sec_array;
  uint64_t spare[46];
  char str[];
};

/* statmount mask bits of the string fields read below. */
#define STATUS_MNT_ROOT 0x8
#define STATUS_MNT_POINT 0x10
#define STATUS_FS_TYPE 0x20
#define STATUS_MNT_OPTS 0x80
#define STATUS_FS_SUBTYPE 0x100
#define STATUS_SB_SOURCE 0x200
#define STATUS_OPT_SEC_ARRAY 0x800

#define LIST_MOUNTS_ROOT UINT64_MAX
#define LIST_MOUNTS_BATCH 256

/* listmount() → the unique ids of every mount of the caller's namespace, oldest first. */
static napi_value js_listmount(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value list;
  if (napi_create_array(env, &list) != napi_ok) return NULL;
  uint64_t ids[LIST_MOUNTS_BATCH];
  struct mount_id_request request = {.size = 24, .mnt_id = LIST_MOUNTS_ROOT, .param = 0};
  uint32_t count = 0;
  for (;;) {
    long listed = syscall(SYS_listmount, &request, ids, LIST_MOUNTS_BATCH, 0);
    if (listed < 0) return throw_system_error(env, errno, "listmount", NULL);
    for (long i = 0; i < listed; i++) {
      napi_value id;
      napi_create_double(env, (double)ids[i], &id);
      napi_set_element(env, list, count++, id);
    }
    if (listed < LIST_MOUNTS_BATCH) return list;
    request.param = ids[listed - 1];
  }
}

static void set_number(napi_env env, napi_value object, const char *name, double number) {
  napi_value value;
  napi_create_double(env, number, &value);
  napi_set_named_property(env, object, name, value);
}

/* Sets a string the kernel returned, when the mask says it did. */
static void set_string(napi_env env, napi_value object, const char *name,
                       const struct mount_status *status, uint64_t bit, uint32_t offset) {
  if (!(status->mask & bit)) return;
  napi_value value;
  napi_create_string_utf8(env, status->str + offset, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, object, name, value);
}

/* statmount(uniqueId, mask) → an object with the fields of struct statmount (camelCased:
 * id and parentId are the mnt_id_old values mountinfo shows, uniqueId and parentUniqueId the
 * 64-bit ones; superOptions is mnt_opts), strings only when their mask bit came back; null
 * when the mount is gone. */
static napi_value js_statmount(napi_env env, napi_callback_info info) {
  napi_value args[2];
  int64_t id;
  uint32_t mask;
  if (!get_args(env, info, 2, args) || !get_int64(env, args[0], &id) ||
      !get_uint32(env, args[1], &mask))
    return NULL;
  struct mount_id_request request = {.size = 24, .mnt_id = (uint64_t)id, .param = mask};
  size_t size = 4096;
  struct mount_status *status = NULL;
  for (;;) {
    free(status);
    status = calloc(1, size);
    if (status == NULL) return throw_system_error(env, ENOMEM, "statmount", NULL);
    if (syscall(SYS_statmount, &request, status, size, 0) == 0) break;
    int err = errno;
    if (err == EOVERFLOW && size < (1 << 24)) {
      size *= 2;
      continue;
    }
    free(status);
    if (err == ENOENT) {
      napi_value null;
      napi_get_null(env, &null);
      return null;
    }
    return throw_system_error(env, err, "statmount", NULL);
  }
  napi_value object;
  napi_create_object(env, &object);
  set_number(env, object, "mask", (double)status->mask);
  set_number(env, object, "devMajor", status->sb_dev_major);
  set_number(env, object, "devMinor", status->sb_dev_minor);
  set_number(env, object, "superblockFlags", status->sb_flags);
  set_number(env, object, "uniqueId", (double)status->mnt_id);
  set_number(env, object, "parentUniqueId", (double)status->mnt_parent_id);
  set_number(env, object, "id", status->mnt_id_old);
  set_number(env, object, "parentId", status->mnt_parent_id_old);
  set_number(env, object, "attributes", (double)status->mnt_attr);
  set_number(env, object, "propagation", (double)status->mnt_propagation);
  set_number(env, object, "peerGroup", (double)status->mnt_peer_group);
  set_number(env, object, "master", (double)status->mnt_master);
  set_number(env, object, "propagateFrom", (double)status->propagate_from);
  set_string(env, object, "fsType", status, STATUS_FS_TYPE, status->fs_type);
  set_string(env, object, "root", status, STATUS_MNT_ROOT, status->mnt_root);
  set_string(env, object, "mountPoint", status, STATUS_MNT_POINT, status->mnt_point);
  set_string(env, object, "superOptions", status, STATUS_MNT_OPTS, status->mnt_opts);
  set_string(env, object, "fsSubtype", status, STATUS_FS_SUBTYPE, status->fs_subtype);
  set_string(env, object, "source", status, STATUS_SB_SOURCE, status->sb_source);
  if (status->mask & STATUS_OPT_SEC_ARRAY) {
    /* Security options: opt_sec_num NUL-terminated strings, one after another. */
    napi_value options;
    napi_create_array(env, &options);
    const char *option = status->str + status->opt_sec_array;
    for (uint32_t i = 0; i < status->opt_sec_num; i++) {
      napi_value value;
      napi_create_string_utf8(env, option, NAPI_AUTO_LENGTH, &value);
      napi_set_element(env, options, i, value);
      option += strlen(option) + 1;
    }
    napi_set_named_property(env, object, "securityOptions", options);
  }
  free(status);
  return object;
}

/* umount2(path, flags) */
static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value args[2];
  int32_t flags;
  char *path;
  if (!get_args(env, info, 2, args) || !get_int32(env, args[1], &flags) ||
      !get_string(env, args[0], &path))
    return NULL;
  napi_value result = nothing_or_throw(env, syscall(SYS_umount2, path, flags), "umount2", path);
  free(path);
  return result;
}

/* umount2Stack(path, flags): umount2 repeated until `path` names no attached mount. umount2
 * removes the topmost mount stacked where `path` leads (LOOKUP_MOUNTPOINT), so through a
 * handle's magic link it takes what was mounted over the handle's mount first, then that
 * mount; EINVAL once it is gone ends the loop. A failure of the first call, or any other
 * failure later, throws. */
static napi_value js_umount2_stack(napi_env env, napi_callback_info info) {
  napi_value args[2];
  int32_t flags;
  char *path;
  if (!get_args(env, info, 2, args) || !get_int32(env, args[1], &flags) ||
      !get_string(env, args[0], &path))
    return NULL;
  long status = syscall(SYS_umount2, path, flags);
  if (status == 0) {
    while (syscall(SYS_umount2, path, flags) == 0) {
    }
    /* Any other failure leaves a mount of the stack attached: it throws. */
    if (errno != EINVAL) status = -1;
  }
  napi_value result = nothing_or_throw(env, status, "umount2", path);
  free(path);
  return result;
}

/* close(fd) */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value args[1];
  int32_t fd;
  if (!get_args(env, info, 1, args) || !get_int32(env, args[0], &fd)) return NULL;
  return nothing_or_throw(env, close(fd), "close", NULL);
}

bool register_syscalls(napi_env env, napi_value exports) {
  return export_function(env, exports, "fsopen", js_fsopen) &&
         export_function(env, exports, "fsconfig", js_fsconfig) &&
         export_function(env, exports, "fsmount", js_fsmount) &&
         export_function(env, exports, "moveMount", js_move_mount) &&
         export_function(env, exports, "openTree", js_open_tree) &&
         export_function(env, exports, "fspick", js_fspick) &&
         export_function(env, exports, "mountSetattr", js_mount_setattr) &&
         export_function(env, exports, "openat2", js_openat2) &&
         export_function(env, exports, "mkdirat", js_mkdirat) &&
         export_function(env, exports, "mknodat", js_mknodat) &&
         export_function(env, exports, "symlinkat", js_symlinkat) &&
         export_function(env, exports, "unlinkat", js_unlinkat) &&
         export_function(env, exports, "statx", js_statx) &&
         export_function(env, exports, "listmount", js_listmount) &&
         export_function(env, exports, "statmount", js_statmount) &&
         export_function(env, exports, "umount2", js_umount2) &&
         export_function(env, exports, "umount2Stack", js_umount2_stack) &&
         export_function(env, exports, "close", js_close);
}
