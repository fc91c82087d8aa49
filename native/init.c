/* The action's init: a tiny static program that the sandbox execs after setup.
 *
 * Usage: chroot-runner-init pid1|subreaper PROGRAM ARGV0 ARGV...
 * with the action's exact environment, fd 3 the status pipe and, in subreaper mode, fd 4
 * its own /proc/thread-self/children (opened by the runner's child before the chroot).
 * On cgroup v2, fds 5 and 6 are cgroup.procs files the runner opened: the init moves itself
 * to 5 (out of the action's cgroup, whose memory.oom.group would kill it with the action)
 * before it forks, and the action's main process moves to 6 (the action's cgroup) before it
 * execs, so that nothing of the action runs outside its cgroup.
 *
 * It forks the action and reaps everything. When the action's main process ends it writes
 * its records to fd 3 and exits: as PID 1 of the action's PID namespace (pid1) the kernel
 * then kills whatever is left; as a child subreaper in the runner's PID namespace
 * (subreaper) it first kills what is left itself. SIGTERM, SIGINT and SIGHUP (cancellation,
 * or the parent death signal in subreaper mode) kill the whole tree.
 *
 * It makes raw system calls only and calls nothing from libc, so that it can be linked
 * without libc (-nostdlib -Wl,-e,init_entry): a static glibc's start-up alone costs more
 * than everything else the init does, as its CPU feature detection traps to the hypervisor
 * in a VM. Linked normally, main() is the entry point and the result is the same. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "plan-format.h" /* the record kinds */

enum { STATUS_FD = 3, CHILDREN_FD = 4, INIT_CGROUP_FD = 5, ACTION_CGROUP_FD = 6 };

/* ---- Raw system calls: the result, or -errno. ---- */

#define NUMBER_TEXT(x) #x
#define NUMBER(x) NUMBER_TEXT(x)

#if defined(__x86_64__)
static long raw_syscall(long number, long a, long b, long c, long d, long e) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  long result;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return result;
}

__asm__(".text\n"
        ".global init_entry\n"
        ".type init_entry,@function\n"
        "init_entry:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call init_entry_c\n"
        "  hlt\n"
        /* clone_on_stack(flags, stack top, fn, arg): the child calls fn(arg) on the new stack
         * and never returns; the parent gets the pid or -errno. The syscall keeps r8 and r9. */
        ".global clone_on_stack\n"
        ".type clone_on_stack,@function\n"
        "clone_on_stack:\n"
        "  mov %rdx, %r9\n"
        "  mov %rcx, %r8\n"
        "  xor %edx, %edx\n"
        "  xor %r10d, %r10d\n"
        "  mov $" NUMBER(SYS_clone) ", %eax\n"
        "  syscall\n"
        "  test %rax, %rax\n"
        "  jnz 1f\n"
        "  xor %ebp, %ebp\n"
        "  mov %r8, %rdi\n"
        "  call *%r9\n"
        "  hlt\n"
        "1:\n"
        "  ret\n");
#elif defined(__aarch64__)
static long raw_syscall(long number, long a, long b, long c, long d, long e) {
  register long x8 __asm__("x8") = number;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
}

__asm__(".text\n"
        ".global init_entry\n"
        ".type init_entry,%function\n"
        "init_entry:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  mov x0, sp\n"
        "  bl init_entry_c\n"
        /* clone_on_stack(flags, stack top, fn, arg), as on x86_64; svc keeps x9 and x10. */
        ".global clone_on_stack\n"
        ".type clone_on_stack,%function\n"
        "clone_on_stack:\n"
        "  mov x9, x2\n"
        "  mov x10, x3\n"
        "  mov x2, xzr\n"
        "  mov x3, xzr\n"
        "  mov x4, xzr\n"
        "  mov x8, #" NUMBER(SYS_clone) "\n"
        "  svc 0\n"
        "  cbnz x0, 1f\n"
        "  mov x29, xzr\n"
        "  mov x30, xzr\n"
        "  mov x0, x10\n"
        "  blr x9\n"
        "  brk #0\n"
        "1:\n"
        "  ret\n");
#else
#error "chroot-runner-init supports x86_64 and aarch64"
#endif

#define SYSCALL(number, a, b, c, d, e) \
  raw_syscall(number, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e))

static _Noreturn void exit_group(int status) {
  for (;;) SYSCALL(SYS_exit_group, status, 0, 0, 0, 0);
}

/* Kernel signal sets: one bit per signal, 8 bytes. */
typedef uint64_t kernel_sigset;
static const long kernel_sigset_size = sizeof(kernel_sigset);

static kernel_sigset signal_bit(int sig) { return (kernel_sigset)1 << (sig - 1); }

/* ---- The init. ---- */

static void write_records(const int32_t *records, size_t count) {
  long written;
  do {
    written = SYSCALL(SYS_write, STATUS_FD, records, count * 2 * sizeof(int32_t), 0, 0);
  } while (written == -EINTR);
}

static void write_record(int32_t kind, int32_t value) {
  const int32_t record[2] = {kind, value};
  write_records(record, 1);
}

/* The final records, in one write (well below PIPE_BUF, so never split). */
static void write_final(int32_t kind, int32_t value) {
  struct rusage usage;
  if (SYSCALL(SYS_getrusage, RUSAGE_CHILDREN, &usage, 0, 0, 0) < 0) {
    write_record(kind, value);
    return;
  }
  const int32_t records[] = {
      kind, value,
      RECORD_USAGE_UTIME_SEC, (int32_t)usage.ru_utime.tv_sec,
      RECORD_USAGE_UTIME_USEC, (int32_t)usage.ru_utime.tv_usec,
      RECORD_USAGE_STIME_SEC, (int32_t)usage.ru_stime.tv_sec,
      RECORD_USAGE_STIME_USEC, (int32_t)usage.ru_stime.tv_usec,
      RECORD_USAGE_MAXRSS, (int32_t)usage.ru_maxrss,
      RECORD_USAGE_MINFLT, (int32_t)usage.ru_minflt,
      RECORD_USAGE_MAJFLT, (int32_t)usage.ru_majflt,
      RECORD_USAGE_NSWAP, (int32_t)usage.ru_nswap,
      RECORD_USAGE_INBLOCK, (int32_t)usage.ru_inblock,
      RECORD_USAGE_OUBLOCK, (int32_t)usage.ru_oublock,
      RECORD_USAGE_MSGSND, (int32_t)usage.ru_msgsnd,
      RECORD_USAGE_MSGRCV, (int32_t)usage.ru_msgrcv,
      RECORD_USAGE_NSIGNALS, (int32_t)usage.ru_nsignals,
      RECORD_USAGE_NVCSW, (int32_t)usage.ru_nvcsw,
      RECORD_USAGE_NIVCSW, (int32_t)usage.ru_nivcsw,
  };
  write_records(records, sizeof records / sizeof records[0] / 2);
}

static void close_fds_from(unsigned first) {
  if (SYSCALL(SYS_close_range, first, ~0U, 0, 0, 0) == 0) return;
  /* Kernels before 5.9. */
  struct rlimit limit;
  unsigned last = 65536;
  if (SYSCALL(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &limit, 0) == 0 && limit.rlim_cur < last) {
    last = (unsigned)limit.rlim_cur;
  }
  for (unsigned fd = first; fd < last; fd++) SYSCALL(SYS_close, fd, 0, 0, 0, 0);
}

static bool is_open(int fd) { return SYSCALL(SYS_fcntl, fd, F_GETFD, 0, 0, 0) >= 0; }

/* Moves the calling process into the cgroup whose cgroup.procs is open at `fd`: 0 or -errno. */
static long join_cgroup(int fd) {
  long written;
  do {
    written = SYSCALL(SYS_write, fd, "0", 1, 0, 0);
  } while (written == -EINTR);
  return written < 0 ? written : 0;
}

struct action {
  char *program;
  char **argv;
  char **envp;
};

static _Noreturn void run_action(const struct action *action) {
  const kernel_sigset none = 0;
  SYSCALL(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, kernel_sigset_size, 0);
  if (is_open(ACTION_CGROUP_FD)) {
    long error = join_cgroup(ACTION_CGROUP_FD);
    if (error < 0) {
      write_record(RECORD_INIT_FAILED, (int32_t)-error);
      exit_group(127);
    }
  }
  close_fds_from(CHILDREN_FD);
  SYSCALL(SYS_fcntl, STATUS_FD, F_SETFD, FD_CLOEXEC, 0, 0);
  long error = SYSCALL(SYS_execve, action->program, action->argv, action->envp, 0, 0);
  write_record(RECORD_EXEC_FAILED, (int32_t)-error);
  exit_group(127);
}

static void run_action_entry(void *action) { run_action(action); }

long clone_on_stack(unsigned long flags, void *stack_top, void (*fn)(void *), void *arg);

/* The action's main process shares the init's memory (CLONE_VM) until its execve, on a stack
 * of its own: the kernel then neither copies the init's page tables nor tears the copy down
 * at the exec, and neither process takes copy-on-write faults (about 40 µs of an action
 * here). Until the exec it runs run_action only, which writes nothing but its own stack; the
 * init meanwhile touches neither that stack nor *action. Not CLONE_VFORK: the init stays
 * free to handle a cancellation while the exec blocks. */
static char action_stack[8192] __attribute__((aligned(16)));

/* Sends SIGKILL to every direct child, reaps one, and repeats until there are none: the
 * children of a killed process are reparented to us (a subreaper) before it is reaped, so
 * they show up on a later pass. Pids cannot be reused in between, as only we reap them. */
static void kill_tree(void) {
  char buffer[4096];
  for (;;) {
    long length = SYSCALL(SYS_pread64, CHILDREN_FD, buffer, sizeof buffer, 0, 0);
    long pid = 0;
    for (long i = 0; i < length; i++) {
      if (buffer[i] >= '0' && buffer[i] <= '9') {
        pid = pid * 10 + (buffer[i] - '0');
      } else {
        if (pid > 0) SYSCALL(SYS_kill, pid, SIGKILL, 0, 0, 0);
        pid = 0;
      }
    }
    if (pid > 0) SYSCALL(SYS_kill, pid, SIGKILL, 0, 0, 0);
    long reaped;
    do {
      reaped = SYSCALL(SYS_wait4, -1, NULL, __WALL, NULL, 0);
    } while (reaped == -EINTR);
    if (reaped < 0) return; /* ECHILD: nothing left */
  }
}

static bool equals(const char *a, const char *b) {
  while (*a != '\0' && *a == *b) a++, b++;
  return *a == *b;
}

static int run_init(int argc, char **argv, char **envp) {
  if (argc < 4) {
    write_record(RECORD_INIT_FAILED, EINVAL);
    return 127;
  }
  const bool subreaper = equals(argv[1], "subreaper");
  const kernel_sigset handled =
      signal_bit(SIGCHLD) | signal_bit(SIGTERM) | signal_bit(SIGINT) | signal_bit(SIGHUP);
  SYSCALL(SYS_rt_sigprocmask, SIG_BLOCK, &handled, NULL, kernel_sigset_size, 0);
  if (subreaper) SYSCALL(SYS_prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  /* Not dumpable: the action (same uid, no CAP_SYS_PTRACE) can neither ptrace the init nor
   * open its /proc/1/fd/3, the status pipe, to forge its own exit status. The action's exec
   * makes the action itself dumpable again. */
  SYSCALL(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (is_open(INIT_CGROUP_FD)) {
    long error = join_cgroup(INIT_CGROUP_FD);
    SYSCALL(SYS_close, INIT_CGROUP_FD, 0, 0, 0, 0);
    if (error < 0) {
      write_record(RECORD_INIT_FAILED, (int32_t)-error);
      return 127;
    }
  }

  const struct action action = {argv[2], argv + 3, envp};
  const long main_pid = clone_on_stack(CLONE_VM | SIGCHLD, action_stack + sizeof action_stack,
                                       run_action_entry, (void *)&action);
  SYSCALL(SYS_close, ACTION_CGROUP_FD, 0, 0, 0, 0);
  if (main_pid < 0) {
    write_record(RECORD_INIT_FAILED, (int32_t)-main_pid);
    return 127;
  }
  for (;;) {
    long sig = SYSCALL(SYS_rt_sigtimedwait, &handled, NULL, NULL, kernel_sigset_size, 0);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      if (subreaper) kill_tree();
      write_record(RECORD_CANCELLED, (int32_t)sig);
      return 0;
    }
    int status;
    long reaped;
    while ((reaped = SYSCALL(SYS_wait4, -1, &status, WNOHANG | __WALL, NULL, 0)) > 0) {
      if (reaped != main_pid) continue;
      if (subreaper) kill_tree();
      if (WIFEXITED(status)) {
        write_final(RECORD_EXITED, WEXITSTATUS(status));
      } else {
        write_final(RECORD_SIGNALED, WTERMSIG(status));
      }
      return 0;
    }
  }
}

/* The entry point without libc: the kernel's initial stack holds argc, argv, NULL, envp. */
_Noreturn void init_entry_c(long *stack);
_Noreturn void init_entry_c(long *stack) {
  int argc = (int)stack[0];
  char **argv = (char **)(stack + 1);
  exit_group(run_init(argc, argv, argv + argc + 1));
}

int main(int argc, char **argv, char **envp) { return run_init(argc, argv, envp); }
