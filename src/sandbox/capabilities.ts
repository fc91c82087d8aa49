// Capability names and numbers (linux/capability.h), for the bounding set.

/** Capability numbers by name without the CAP_ prefix. */
export const capabilityNumbers: Readonly<Record<string, number>> = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  DAC_READ_SEARCH: 2,
  FOWNER: 3,
  FSETID: 4,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  LINUX_IMMUTABLE: 9,
  NET_BIND_SERVICE: 10,
  NET_BROADCAST: 11,
  NET_ADMIN: 12,
  NET_RAW: 13,
  IPC_LOCK: 14,
  IPC_OWNER: 15,
  SYS_MODULE: 16,
  SYS_RAWIO: 17,
  SYS_CHROOT: 18,
  SYS_PTRACE: 19,
  SYS_PACCT: 20,
  SYS_ADMIN: 21,
  SYS_BOOT: 22,
  SYS_NICE: 23,
  SYS_RESOURCE: 24,
  SYS_TIME: 25,
  SYS_TTY_CONFIG: 26,
  MKNOD: 27,
  LEASE: 28,
  AUDIT_WRITE: 29,
  AUDIT_CONTROL: 30,
  SETFCAP: 31,
  MAC_OVERRIDE: 32,
  MAC_ADMIN: 33,
  SYSLOG: 34,
  WAKE_ALARM: 35,
  BLOCK_SUSPEND: 36,
  AUDIT_READ: 37,
  PERFMON: 38,
  BPF: 39,
  CHECKPOINT_RESTORE: 40,
};

/** What container runtimes grant by default (Docker's list), less what lets an action reach
 * past its sandbox: MKNOD (the runner makes its /dev), SETFCAP (file capabilities it wrote on
 * its outputs or its stdout log made a host user root) and AUDIT_WRITE (records in the host's
 * audit log: a user namespace does not separate audit). SYS_ADMIN, SYS_MODULE and SYS_PTRACE
 * are not in it either. */
export const defaultCapabilities: readonly string[] = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
];

/** Capability numbers for names (with or without CAP_, any case); throws on an unknown one. */
export function capabilitiesByName(names: readonly string[]): number[] {
  return names.map((name) => {
    const number = capabilityNumbers[name.toUpperCase().replace(/^CAP_/, '')];
    if (number === undefined) throw new Error(`unknown capability "${name}"`);
    return number;
  });
}
