// The setup program that the child of a spawn runs between clone and exec
// (native/interpreter.c interprets it; native/plan-format.h numbers its operations). Policy
// lives here: which steps, in which order, on which fds. Each step carries a description so
// that a failure in the child reads as what was being done.
import { constants, type SystemError } from '../syscalls/index.js';
import { type PlanOperation, planFormat, type SpawnPlan } from '../syscalls/process.js';

const { operations: Op, openOptions, stepWidth } = planFormat;

/** Which of each operation's five arguments are slots (bit i: argument i), as the builder's
 * methods below lay them out: the words a fragment renumbers where it is appended. */
const slotArguments: Readonly<Record<PlanOperation, number>> = {
  open: 0b11,
  openTree: 0b11,
  moveMount: 0b11,
  fsopen: 0b1,
  fsconfig: 0b1,
  fsmount: 0b11,
  mountSetattr: 0b1,
  mkdirat: 0b1,
  createFile: 0b1,
  symlinkat: 0b1,
  fchdir: 0b1,
  unshare: 0,
  setRootPropagation: 0,
  pivotRoot: 0b1,
  coverRoot: 0b1,
  chroot: 0b1,
  chdir: 0b1,
  dup2: 0b1,
  setCredentials: 0,
  dropBoundingCaps: 0,
  noNewPrivs: 0,
  pdeathsig: 0b10,
  loopbackUp: 0,
  cloexecFrom: 0,
  exec: 0b1,
  writeFile: 0b1,
  sameInode: 0b11,
  mknodat: 0b1,
  setns: 0b1,
  setsid: 0,
  joinSessionKeyring: 0,
  seccomp: 0,
  awaitIdMaps: 0,
  becomeNamespaceOwner: 0,
  exit: 0,
};

/** slotArguments by operation number. */
const slotArgumentsByOp = new Map(
  Object.entries(slotArguments).map(([name, mask]) => [Op[name as PlanOperation], mask]),
);

/** What a word of a fragment's steps is, for renumbering it where it is appended. */
const plainWord = 0;
const slotWord = 1;
const stringWord = 2;

/** An index into the plan's fd table. `cwd` stands for AT_FDCWD where a base is expected. */
export type Slot = number & { readonly __slot: unique symbol };
export const cwd = -1 as Slot;

/** What a step is about, for classifying its failure: the input root's layout (a bad
 * mountpoint, a missing working directory) is the request's fault; the rest is ours. */
export type StepSubject = 'inputRoot' | 'workingDirectory' | 'runner';

export interface StepInfo {
  readonly description: string;
  readonly subject: StepSubject;
}

/** A step whose failure is the runner's, not the request's. */
export function runnerStep(description: string): StepInfo {
  return { description, subject: 'runner' };
}

/** A setup step that failed, in the child or in the runner: what was being done, and the
 * system error. */
export class SetupError extends Error {
  constructor(
    readonly step: StepInfo,
    override readonly cause: SystemError,
  ) {
    super(`Failed to ${step.description}: ${cause.message}`);
  }
}

/** Steps made once and appended to many plans (PlanBuilder.append): the part of an action's
 * plan that is the same for every action of an engine. Its slots are its own, renumbered
 * where it is appended; its parameters are slots whose fds each append gives. */
export class PlanFragment {
  constructor(
    readonly steps: Int32Array,
    /** What each word of `steps` is: plainWord, slotWord or stringWord. */
    readonly words: Uint8Array,
    readonly strings: readonly string[],
    readonly slots: readonly number[],
    readonly parameters: readonly Slot[],
    readonly info: readonly StepInfo[],
  ) {}
}

export class PlanBuilder {
  /** stepWidth words per step, the first #length of them used: a typed array, as the ids
   * of the host range are no small integers for V8 (an array of them would hold doubles). */
  #steps = new Int32Array(128 * stepWidth);
  #length = 0;
  readonly #strings: string[] = [];
  readonly #slots: number[] = [];
  readonly #info: StepInfo[] = [];
  readonly #parameters: Slot[] = [];
  #groups: number[] = [];
  #argv: string[] = [];
  #envp: string[] = [];
  #statusSlot = -1;
  cloneFlags = 0;
  /** The cgroup (v2) directory the child is cloned into, instead of joining one with a step:
   * SpawnPlan.cgroupFd. */
  cgroupFd = -1;
  /** With CLONE_NEWUSER in cloneFlags: the host ids that own the new user namespace (the
   * runner's thread makes the clone as them, native/spawn.c); the runner's when absent. */
  cloneOwner: { readonly uid: number; readonly gid: number } | undefined;
  /** The BPF program the seccomp step loads. */
  seccompProgram: Buffer = Buffer.alloc(0);

  /** A slot holding an fd of the runner (inherited by the child's copy of the fd table). */
  inherit(fd: number): Slot {
    this.#slots.push(fd);
    return (this.#slots.length - 1) as Slot;
  }

  /** A slot of a fragment whose fd each append gives (PlanBuilder.append). */
  parameter(): Slot {
    const slot = this.#newSlot();
    this.#parameters.push(slot);
    return slot;
  }

  /** The steps so far as a fragment, to append to other plans; they may not use what is
   * the whole plan's (argv, groups, the status pipe, clone flags, a seccomp program). */
  fragment(): PlanFragment {
    if (
      this.#argv.length > 0 ||
      this.#envp.length > 0 ||
      this.#groups.length > 0 ||
      this.#statusSlot !== -1 ||
      this.cloneFlags !== 0 ||
      this.cgroupFd !== -1 ||
      this.cloneOwner !== undefined ||
      this.seccompProgram.length > 0
    ) {
      throw new TypeError('a plan fragment holds steps only');
    }
    const steps = this.#steps.slice(0, this.#length);
    const words = new Uint8Array(steps.length);
    for (let step = 0; step < steps.length; step += stepWidth) {
      const slots = slotArgumentsByOp.get(steps[step] ?? -1) ?? 0;
      for (let argument = 0; argument < 5; argument++) {
        if ((slots & (1 << argument)) !== 0) words[step + 1 + argument] = slotWord;
      }
      words[step + 6] = stringWord;
      words[step + 7] = stringWord;
    }
    return new PlanFragment(
      steps,
      words,
      [...this.#strings],
      [...this.#slots],
      [...this.#parameters],
      [...this.#info],
    );
  }

  /** Appends the fragment's steps, its slots after this plan's, each parameter holding the
   * fd of `fds` at its place; returns where each slot of the fragment is in this plan. */
  append(fragment: PlanFragment, fds: readonly number[]): (slot: Slot) => Slot {
    if (fds.length !== fragment.parameters.length) {
      throw new TypeError(`the fragment takes ${fragment.parameters.length} fds`);
    }
    const slotBase = this.#slots.length;
    const stringBase = this.#strings.length;
    this.#slots.push(...fragment.slots);
    for (const [index, parameter] of fragment.parameters.entries()) {
      this.#slots[slotBase + parameter] = fds[index] ?? -1;
    }
    for (const value of fragment.strings) this.#strings.push(value);
    const { steps, words } = fragment;
    this.#reserve(steps.length);
    for (let word = 0; word < steps.length; word++) {
      const value = steps[word] ?? 0;
      const kind = words[word];
      // Negative: cwd for a slot, none for a string.
      this.#steps[this.#length++] =
        value < 0 || kind === plainWord
          ? value
          : value + (kind === slotWord ? slotBase : stringBase);
    }
    for (const info of fragment.info) this.#info.push(info);
    return (slot) => (slot < 0 ? slot : ((slot + slotBase) as Slot));
  }

  /** The slot that receives the write end of the status pipe. */
  statusPipe(): Slot {
    this.#statusSlot = this.#newSlot();
    return this.#statusSlot as Slot;
  }

  /** Information about step `index`, for errors. */
  step(index: number): StepInfo | undefined {
    return this.#info[index];
  }

  build(): SpawnPlan {
    const strings = [...this.#strings, ...this.#argv, ...this.#envp];
    if (strings.some((value) => value.includes('\0'))) {
      throw new TypeError('strings of a spawn plan must not contain NUL bytes');
    }
    // The typed array constructors copy an array directly; Int32Array.from iterates it.
    return {
      // A view: steps are only ever added past it.
      steps: this.#steps.subarray(0, this.#length),
      strings: strings.length === 0 ? Buffer.alloc(0) : Buffer.from(`${strings.join('\0')}\0`),
      slots: new Int32Array(this.#slots),
      argvStart: this.#strings.length,
      argvCount: this.#argv.length,
      envpStart: this.#strings.length + this.#argv.length,
      envpCount: this.#envp.length,
      groups: new Int32Array(this.#groups),
      cloneFlags: this.cloneFlags,
      cgroupFd: this.cgroupFd,
      cloneOwnerUid: this.cloneOwner?.uid ?? -1,
      cloneOwnerGid: this.cloneOwner?.gid ?? -1,
      statusSlot: this.#statusSlot,
      seccompProgram: this.seccompProgram,
    };
  }

  #newSlot(): Slot {
    return this.inherit(-1);
  }

  #string(value: string | undefined): number {
    if (value === undefined) return -1;
    this.#strings.push(value);
    return this.#strings.length - 1;
  }

  #reserve(words: number): void {
    if (this.#length + words <= this.#steps.length) return;
    const grown = new Int32Array(Math.max(this.#steps.length * 2, this.#length + words));
    grown.set(this.#steps.subarray(0, this.#length));
    this.#steps = grown;
  }

  #add(info: StepInfo, op: number, args: readonly number[], first?: string, second?: string): void {
    // The width of native/plan-format.h: op, five arguments, two strings.
    this.#reserve(stepWidth);
    const steps = this.#steps;
    const at = this.#length;
    steps[at] = op;
    for (let argument = 0; argument < 5; argument++) steps[at + 1 + argument] = args[argument] ?? 0;
    steps[at + 6] = this.#string(first);
    steps[at + 7] = this.#string(second);
    this.#length += stepWidth;
    this.#info.push(info);
  }

  /** openat2 beneath `base`; `mkdir` creates a missing last component (a single name),
   * `optional` leaves the slot empty on ENOENT (steps on an empty slot do nothing). */
  open(
    info: StepInfo,
    base: Slot,
    path: string,
    how: { flags: number; resolve: number; mkdir?: boolean; optional?: boolean },
  ): Slot {
    const slot = this.#newSlot();
    const options =
      (how.mkdir === true ? openOptions.mkdir : 0) |
      (how.optional === true ? openOptions.optional : 0);
    this.#add(info, Op.open, [slot, base, how.flags, how.resolve, options], path);
    return slot;
  }

  openTree(info: StepInfo, base: Slot, path: string, flags: number, optional = false): Slot {
    const slot = this.#newSlot();
    const emptyPath = path === '' ? constants.AT_EMPTY_PATH : 0;
    this.#add(
      info,
      Op.openTree,
      [slot, base, flags | emptyPath, 0, optional ? openOptions.optional : 0],
      path,
    );
    return slot;
  }

  /** Attaches the detached mount in `source` onto the node in `target` (cwd: the cwd), or
   * onto `path` beneath it, resolved by the kernel as move_mount resolves (symlinks followed
   * but in the last component): only for a filesystem of the sandbox's own, never the input
   * root. `optional` makes a missing `path` a step that does nothing. */
  moveMount(info: StepInfo, source: Slot, target: Slot, path?: string, optional = false): void {
    const options = optional ? openOptions.optional : 0;
    this.#add(info, Op.moveMount, [source, target, options], path === '' ? undefined : path);
  }

  /** Moves the mount attached at `sourcePath` beneath `base` (a mount's root, in a tree of
   * the sandbox's own) onto `path` beneath `target`, as moveMount attaches. */
  moveAttachedMount(
    info: StepInfo,
    base: Slot,
    sourcePath: string,
    target: Slot,
    path?: string,
    optional = false,
  ): void {
    const options = optional ? openOptions.optional : 0;
    this.#add(
      info,
      Op.moveMount,
      [base, target, options],
      path === '' ? undefined : path,
      sourcePath,
    );
  }

  /** fsopen + fsconfig + create + fsmount: a detached mount of a new filesystem. */
  newFilesystem(
    info: StepInfo,
    fstype: string,
    options: Readonly<Record<string, string | true>>,
    attributes: number,
  ): Slot {
    const fs = this.#newSlot();
    this.#add(info, Op.fsopen, [fs], fstype);
    for (const [key, value] of Object.entries(options)) {
      if (value === true) this.#add(info, Op.fsconfig, [fs, constants.FSCONFIG_SET_FLAG], key);
      else this.#add(info, Op.fsconfig, [fs, constants.FSCONFIG_SET_STRING], key, value);
    }
    this.#add(info, Op.fsconfig, [fs, constants.FSCONFIG_CMD_CREATE]);
    const mount = this.#newSlot();
    this.#add(info, Op.fsmount, [mount, fs, attributes]);
    return mount;
  }

  mountSetattr(info: StepInfo, slot: Slot, attrSet: number, flags = 0, propagation = 0): void {
    this.#add(info, Op.mountSetattr, [slot, attrSet, 0, propagation, flags]);
  }

  mkdirat(info: StepInfo, base: Slot, name: string, mode: number): void {
    this.#add(info, Op.mkdirat, [base, mode], name);
  }

  createFile(info: StepInfo, base: Slot, name: string, mode: number): void {
    this.#add(info, Op.createFile, [base, mode], name);
  }

  /** mknodat with exactly `mode` (the type and the permission bits), whatever the umask. */
  mknodat(
    info: StepInfo,
    base: Slot,
    name: string,
    mode: number,
    device: { readonly major: number; readonly minor: number },
  ): void {
    this.#add(info, Op.mknodat, [base, mode, device.major, device.minor], name);
  }

  symlinkat(info: StepInfo, target: string, base: Slot, name: string): void {
    this.#add(info, Op.symlinkat, [base], target, name);
  }

  fchdir(info: StepInfo, slot: Slot): void {
    this.#add(info, Op.fchdir, [slot]);
  }

  /** setns(fd, nstype): enters the namespace an inherited fd refers to. */
  setns(info: StepInfo, namespace: Slot, nstype: number): void {
    this.#add(info, Op.setns, [namespace, nstype]);
  }

  unshare(info: StepInfo, flags: number): void {
    this.#add(info, Op.unshare, [flags]);
  }

  /** mount(NULL, "/", NULL, MS_REC|propagation, NULL): MS_SLAVE or MS_PRIVATE for the
   * whole tree. */
  setRootPropagation(info: StepInfo, propagation: number): void {
    this.#add(info, Op.setRootPropagation, [propagation]);
  }

  /** fchdir(root); pivot_root(".", "."); umount2(".", MNT_DETACH); chdir("/"). */
  pivotRoot(info: StepInfo, root: Slot): void {
    this.#add(info, Op.pivotRoot, [root]);
  }

  /** fchdir(root); mount(".", "/", MS_MOVE); chroot("."); chdir("/"): the root's mount
   * stacked on the namespace's root, which stays, covered (as switch_root leaves it). Where
   * chroot is refused (EPERM: a seccomp profile), pivot_root(".", ".") and the old root
   * detached instead. */
  coverRoot(info: StepInfo, root: Slot): void {
    this.#add(info, Op.coverRoot, [root]);
  }

  /** fchdir(root); chroot("."). */
  chroot(info: StepInfo, root: Slot): void {
    this.#add(info, Op.chroot, [root]);
  }

  chdir(info: StepInfo, base: Slot, path: string, resolve: number): void {
    this.#add(info, Op.chdir, [base, resolve], path);
  }

  /** dup2 without CLOEXEC onto a fixed fd number. */
  dup2(info: StepInfo, source: Slot, target: number): void {
    this.#add(info, Op.dup2, [source, target]);
  }

  setCredentials(
    info: StepInfo,
    uid: number,
    gid: number,
    additionalGroups: readonly number[],
  ): void {
    this.#groups = [...additionalGroups];
    this.#add(info, Op.setCredentials, [uid, gid]);
  }

  /** Makes `uid` and `gid` the real and effective ids, the owner of the user namespace the
   * next unshare creates (the kernel takes its creator's effective ids), without
   * capabilities outside it; the saved and file system ids stay the runner's, so that the
   * steps up to the action's own credentials open files as before. */
  becomeNamespaceOwner(info: StepInfo, uid: number, gid: number): void {
    this.#add(info, Op.becomeNamespaceOwner, [uid, gid]);
  }

  /** Drops every capability from the bounding set except those in `keep` (numbers). */
  dropBoundingCapabilities(info: StepInfo, keep: readonly number[]): void {
    let low = 0;
    let high = 0;
    for (const capability of keep) {
      if (capability < 32) low |= 1 << capability;
      else high |= 1 << (capability - 32);
    }
    this.#add(info, Op.dropBoundingCaps, [low, high]);
  }

  noNewPrivileges(info: StepInfo): void {
    this.#add(info, Op.noNewPrivs, []);
  }

  /** prctl(PR_SET_PDEATHSIG), then, with `runner` (a slot holding a pidfd of the runner),
   * fails with ESRCH if the runner has already exited: the kernel sends no signal to a
   * child whose parent died before the prctl. */
  parentDeathSignal(info: StepInfo, signal: number, runner: Slot | undefined): void {
    this.#add(info, Op.pdeathsig, [signal, runner ?? -1]);
  }

  loopbackUp(info: StepInfo): void {
    this.#add(info, Op.loopbackUp, []);
  }

  /** setsid(): a new session without a controlling terminal. */
  newSession(info: StepInfo): void {
    this.#add(info, Op.setsid, []);
  }

  /** keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a new, empty, anonymous session keyring. */
  joinSessionKeyring(info: StepInfo): void {
    this.#add(info, Op.joinSessionKeyring, []);
  }

  /** Loads `program` (a compiled BPF filter) with seccomp(SECCOMP_SET_MODE_FILTER); after
   * noNewPrivileges. */
  seccomp(info: StepInfo, program: Buffer): void {
    this.seccompProgram = program;
    this.#add(info, Op.seccomp, []);
  }

  /** Waits until the runner wrote `uidMap` and `gidMap` (/proc's format) as the id maps of
   * the user namespace the child just unshared, as only a process of the runner's user
   * namespace may map ids other than its own. The child then cannot be a vfork child: the
   * runner waits for its exec on a futex word instead (native/spawn.c). Once per plan. */
  awaitIdMaps(info: StepInfo, uidMap: string, gidMap: string): void {
    this.#add(info, Op.awaitIdMaps, [], uidMap, gidMap);
  }

  /** Writes `content` to the existing file `path` beneath `base` in one write. */
  writeFile(info: StepInfo, base: Slot, path: string, content: string): void {
    this.#add(info, Op.writeFile, [base], path, content);
  }

  /** Fails with EXDEV unless both slots name the same inode (st_dev and st_ino). */
  sameInode(info: StepInfo, first: Slot, second: Slot): void {
    this.#add(info, Op.sameInode, [first, second]);
  }

  /** Marks every fd from `first` up close-on-exec. */
  cloexecFrom(info: StepInfo, first: number): void {
    this.#add(info, Op.cloexecFrom, [first]);
  }

  /** execveat(executable, "", argv, envp, AT_EMPTY_PATH): the last step. */
  exec(info: StepInfo, executable: Slot, argv: readonly string[], envp: readonly string[]): void {
    this.#argv = [...argv];
    this.#envp = [...envp];
    this.#add(info, Op.exec, [executable]);
  }

  /** Ends the plan with exit(0) instead of an exec: for plans run for what they leave in the
   * runner's fd table (runInRunnerFdTable). */
  exit(info: StepInfo): void {
    this.#add(info, Op.exit, []);
  }
}
