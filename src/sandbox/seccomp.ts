// The seccomp policy: what build actions never need, refused (EPERM, or ENOSYS where a library
// falls back) rather than killed, so an action can report it. Data here, compiled once per
// configuration with libseccomp (native/seccomp.c) and loaded by the child of a spawn right
// before it execs the init. docs/seccomp.md lists every entry with its reason.
import { constants as osConstants } from 'node:os';
import { type CompiledFilter, compileSeccompFilter, x32SystemCalls } from '../syscalls/process.js';
import { shortenedProgram } from './seccomp-program.js';

const { EPERM, ENOSYS } = osConstants.errno;

/** libseccomp's comparison operators (enum scmp_compare). */
const maskedEqual = 7;

/** A condition on argument `argument`: (value & mask) === expected. */
type Condition = readonly [argument: number, mask: bigint, expected: bigint];

interface SyscallRule {
  readonly syscall: string;
  /** The x86_64 number, for syscalls newer than the installed libseccomp knows. */
  readonly number?: number;
  /** All must hold (libseccomp ANDs a rule's conditions); rules of an entry are ORed. */
  readonly conditions?: readonly Condition[];
  readonly errno?: number;
}

export interface SeccompEntry {
  /** What the operator names to allow it (chrootRunner.seccomp.allow). */
  readonly name: string;
  readonly rules: readonly SyscallRule[];
  /** Why an action is refused it. */
  readonly reason: string;
}

const CLONE_NEWUSER = 0x10000000n;
const TIOCSTI = 0x5412n;
const TIOCLINUX = 0x541cn;
const S_ISUID = 0o4000n;
const S_ISGID = 0o2000n;
const O_CREAT = 0o100n;
const O_TMPFILE = 0o20000000n;
const low32 = 0xffffffffn;
const AF_VSOCK = 40n;

const setuidModes = [S_ISUID, S_ISGID];

/** Rules refusing `syscall` when its mode argument has the set-user-ID or set-group-ID bit
 * (for opens only when it creates the file: the mode is ignored otherwise). */
function settingIdBits(
  syscall: string,
  modeArgument: number,
  creates?: { readonly argument: number; readonly flag: bigint },
  number?: number,
): SyscallRule[] {
  return setuidModes.map((bit) => ({
    syscall,
    conditions: [
      ...(creates === undefined ? [] : [[creates.argument, creates.flag, creates.flag] as const]),
      [modeArgument, bit, bit] as const,
    ],
    ...(number === undefined ? {} : { number }),
  }));
}

/** Every entry of the default policy. */
export const seccompEntries: readonly SeccompEntry[] = [
  {
    name: 'user_namespaces',
    rules: [
      { syscall: 'unshare', conditions: [[0, CLONE_NEWUSER, CLONE_NEWUSER]] },
      { syscall: 'clone', conditions: [[0, CLONE_NEWUSER, CLONE_NEWUSER]] },
      // clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes glibc fall
      // back to clone, which the rule above sees.
      { syscall: 'clone3', number: 435, errno: ENOSYS },
    ],
    reason:
      'A nested user namespace gives the action every capability over the namespaces it then ' +
      'creates: a uid-0 action mounted cgroup2 in one and wrote cgroup.kill of host cgroups. ' +
      'Allow it for actions that run a sandbox of their own (bwrap, unshare, rootless podman).',
  },
  {
    name: 'tiocsti',
    rules: [
      { syscall: 'ioctl', conditions: [[1, low32, TIOCSTI]] },
      { syscall: 'ioctl', conditions: [[1, low32, TIOCLINUX]] },
    ],
    reason:
      "TIOCSTI pushes input into a terminal (the operator's shell runs it); TIOCLINUX pastes " +
      'on a virtual console. The action has no controlling terminal (setsid), and any other ' +
      'terminal it can open is refused these too.',
  },
  {
    name: 'keys',
    rules: [{ syscall: 'add_key' }, { syscall: 'request_key' }, { syscall: 'keyctl' }],
    reason:
      "Kernel keyrings belong to a uid and outlive the action: a root action read the host root's " +
      'keys and planted keys for later actions; request_key runs host programs (upcalls). The ' +
      'action gets a fresh, empty session keyring anyway.',
  },
  {
    name: 'setuid_bits',
    rules: [
      ...settingIdBits('chmod', 1),
      ...settingIdBits('fchmod', 1),
      ...settingIdBits('fchmodat', 2),
      ...settingIdBits('fchmodat2', 2, undefined, 452),
      ...settingIdBits('mknod', 1),
      ...settingIdBits('mknodat', 2),
      ...settingIdBits('open', 2, { argument: 1, flag: O_CREAT }),
      ...settingIdBits('open', 2, { argument: 1, flag: O_TMPFILE }),
      ...settingIdBits('openat', 3, { argument: 2, flag: O_CREAT }),
      ...settingIdBits('openat', 3, { argument: 2, flag: O_TMPFILE }),
      ...settingIdBits('creat', 1),
      // openat2 passes its mode in memory: ENOSYS makes callers fall back to openat.
      { syscall: 'openat2', number: 437, errno: ENOSYS },
    ],
    reason:
      'A set-user-ID or set-group-ID file left in the build directory (or the stdout log, ' +
      'through /proc/self/fd/1) runs with its owner’s ids when a host user executes it: a uid-0 ' +
      'action left setuid-root programs. Builds do not need these bits.',
  },
  {
    name: 'bpf',
    rules: [{ syscall: 'bpf' }],
    reason: 'Loads programs into the kernel: a large attack surface; builds load none.',
  },
  {
    name: 'perf_event_open',
    rules: [{ syscall: 'perf_event_open' }],
    reason:
      'Kernel and hardware performance counters: a side channel on other processes and a ' +
      'frequent exploit surface. Profile outside the sandbox, or allow it.',
  },
  {
    name: 'userfaultfd',
    rules: [{ syscall: 'userfaultfd' }],
    reason: 'Stalls kernel accesses to user memory at will: the usual tool to win kernel races.',
  },
  {
    name: 'io_uring',
    rules: [
      { syscall: 'io_uring_setup' },
      { syscall: 'io_uring_enter' },
      { syscall: 'io_uring_register' },
    ],
    reason:
      'A second system-call interface that seccomp cannot filter, and a large attack surface ' +
      '(disabled by default on ChromeOS, Android and in Docker). Allow it for tools that need it.',
  },
  {
    name: 'kexec',
    rules: [{ syscall: 'kexec_load' }, { syscall: 'kexec_file_load' }],
    reason: 'Replaces the running kernel.',
  },
  {
    name: 'kernel_modules',
    rules: [{ syscall: 'init_module' }, { syscall: 'finit_module' }, { syscall: 'delete_module' }],
    reason: 'Loads code into the kernel.',
  },
  {
    name: 'vsock',
    rules: [{ syscall: 'socket', conditions: [[0, low32, AF_VSOCK]] }],
    reason:
      'vsock sockets are not network-namespaced: on a virtual machine an action bound ports in ' +
      'the host’s vsock port space, and could connect to the hypervisor’s services.',
  },
  {
    name: 'open_by_handle_at',
    rules: [{ syscall: 'open_by_handle_at' }],
    reason:
      'Opens any file of a mounted filesystem by its handle, past the chroot (the "shocker" ' +
      'escape from Docker).',
  },
];

export const seccompEntryNames: readonly string[] = seccompEntries.map((entry) => entry.name);

/** What the operator configured: the policy minus the entries named in `allow`; nothing when
 * disabled. */
export interface SeccompSettings {
  readonly enabled: boolean;
  readonly allow: readonly string[];
}

export const defaultSeccomp: SeccompSettings = { enabled: true, allow: [] };

/** The other architectures whose system calls a process of this one can make (int 0x80,
 * x32): the filter covers them too, or they would bypass it. x32 only where the kernel runs
 * its calls: elsewhere they fail with ENOSYS, as the filter's answer to any architecture it
 * does not cover, and its rules would be a fifth of the program (docs/seccomp.md). */
function architectures(): string[] {
  if (process.arch === 'x64') return ['x86_64', 'x86', ...(x32SystemCalls() ? ['x32'] : [])];
  if (process.arch === 'arm64') return ['aarch64', 'arm'];
  return [];
}

/** The filter of `settings` as libseccomp exports it: throws an ELIBACC system error when
 * libseccomp is not installed. */
export function libseccompFilter(settings: SeccompSettings): CompiledFilter {
  const rules = seccompEntries
    .filter((entry) => !settings.allow.includes(entry.name))
    .flatMap((entry) => entry.rules)
    .map((rule) => ({
      syscall: rule.syscall,
      number: rule.number ?? -1,
      errno: rule.errno ?? EPERM,
      conditions: (rule.conditions ?? []).map(
        ([argument, mask, expected]) =>
          [argument, maskedEqual, mask, expected] as [number, number, bigint, bigint],
      ),
    }));
  return compileSeccompFilter({
    architectures: architectures(),
    rules,
    otherArchitectureErrno: ENOSYS,
  });
}

const compiled = new Map<string, CompiledFilter>();

/** The filter of `settings` (enabled), compiled on first use and shortened
 * (seccomp-program.ts): throws as libseccompFilter does. */
export function compiledSeccompFilter(settings: SeccompSettings): CompiledFilter {
  const key = [...settings.allow].sort().join(',');
  let filter = compiled.get(key);
  if (filter === undefined) {
    const exported = libseccompFilter(settings);
    filter = { ...exported, program: shortenedProgram(exported.program) };
    compiled.set(key, filter);
  }
  return filter;
}

/** The BPF program of `settings` (see compiledSeccompFilter); an empty Buffer when disabled. */
export function seccompProgram(settings: SeccompSettings): Buffer {
  return settings.enabled ? compiledSeccompFilter(settings).program : Buffer.alloc(0);
}
