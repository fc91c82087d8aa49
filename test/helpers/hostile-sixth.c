/* What test/kernel/hostile-sixth.test.ts has an action do: each call the default seccomp
 * policy refuses, made through each entry point an x86_64 process has (syscall, int 0x80 as
 * i386, syscall with bit 30 as x32), with arguments that the kernel would refuse otherwise
 * (a bad fd, a NULL pointer), so that "EPERM" is the filter's answer and anything else means
 * the call reached the kernel. One line per attempt: "<call> <entry> <errno name|ok>". */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define X32_BIT 0x40000000L

static long call_native(long nr, long a, long b, long c, long d, long e) {
  long result;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return result;
}

/* i386's entry: 32-bit arguments in ebx, ecx, edx, esi, edi. */
static long call_i386(long nr, long a, long b, long c, long d, long e) {
  long result;
  __asm__ volatile("push %%rbx\n\tmov %2, %%rbx\n\tint $0x80\n\tpop %%rbx"
                   : "=a"(result)
                   : "a"(nr), "r"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                   : "memory");
  return result;
}

static void report(const char *name, const char *entry, long result) {
  printf("%s %s %s\n", name, entry, result < 0 && result > -4096 ? strerrorname_np((int)-result) : "ok");
  fflush(stdout);
}

struct call {
  const char *name;
  long x86_64, i386; /* numbers; x32 is x86_64's with bit 30 (x32 numbers equal x86_64's here) */
  long args[5];
};

/* socketcall's arguments, in the static binary's low memory (int 0x80 takes 32-bit pointers). */
static uint32_t vsock_arguments[3] = {40 /* AF_VSOCK */, 1 /* SOCK_STREAM */, 0};

int main(void) {
  const long clone_newuser = 0x10000000, tiocsti = 0x5412, tioclinux = 0x541c;
  const long o_creat = 0100, o_tmpfile = 020000000, s_isuid = 04000, s_isgid = 02000;
  const struct call calls[] = {
      {"bpf", 321, 357, {0, 0, 0, 0, 0}},
      {"perf_event_open", 298, 336, {0, 0, -1, -1, 0}},
      {"io_uring_setup", 425, 425, {1, 0, 0, 0, 0}},
      {"userfaultfd", 323, 374, {-1, 0, 0, 0, 0}},
      {"keyctl", 250, 288, {-1, 0, 0, 0, 0}},
      {"add_key", 248, 286, {0, 0, 0, 0, 0}},
      {"unshare-newuser", 272, 310, {clone_newuser | 0x80000000L, 0, 0, 0, 0}},
      {"tiocsti", 16, 54, {-1, tiocsti, 0, 0, 0}},
      {"tioclinux", 16, 54, {-1, tioclinux, 0, 0, 0}},
      {"vsock", 41, 359, {40, 1, 0, 0, 0}},
      {"chmod-suid", 90, 15, {0, s_isuid | 0755, 0, 0, 0}},
      {"fchmodat-sgid", 268, 306, {-1, 0, s_isgid | 0755, 0, 0}},
      {"openat-creat-suid", 257, 295, {-1, 0, o_creat, s_isuid, 0}},
      {"openat-tmpfile-sgid", 257, 295, {-1, 0, o_tmpfile | 0200000, s_isgid, 0}},
      {"open-creat-suid", 2, 5, {0, o_creat, s_isuid, 0, 0}},
      {"creat-suid", 85, 8, {0, s_isuid, 0, 0, 0}},
      {"mknodat-sgid", 259, 297, {-1, 0, s_isgid | 0100000, 0, 0}},
      {"fchmodat2-suid", 452, 452, {-1, 0, s_isuid, 0, 0}},
  };
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
    const struct call *c = &calls[i];
    const long *a = c->args;
    report(c->name, "x86_64", call_native(c->x86_64, a[0], a[1], a[2], a[3], a[4]));
    report(c->name, "i386", call_i386(c->i386, a[0], a[1], a[2], a[3], a[4]));
    report(c->name, "x32", call_native(X32_BIT | c->x86_64, a[0], a[1], a[2], a[3], a[4]));
  }
  /* socketcall(SYS_SOCKET, {AF_VSOCK, SOCK_STREAM, 0}): i386's multiplexer, its arguments in
   * memory where no filter reads them. */
  report("vsock-socketcall", "i386", call_i386(102, 1, (long)(uintptr_t)vsock_arguments, 0, 0, 0));
  return 0;
}
