/* Numbers of the syscalls that old libc headers lack. The mount API, clone3, openat2,
 * statmount and listmount got the same numbers on every architecture (Linux 5.2, 5.3, 5.6,
 * 5.12, 6.8), so they can be completed here. */
#ifndef CHROOT_RUNNER_SYSCALL_NUMBERS_H
#define CHROOT_RUNNER_SYSCALL_NUMBERS_H

#include <sys/syscall.h>

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_fspick
#define SYS_fspick 433
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_statmount
#define SYS_statmount 457
#endif
#ifndef SYS_listmount
#define SYS_listmount 458
#endif
#endif
