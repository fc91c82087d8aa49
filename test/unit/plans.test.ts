// The engine's plans for each isolation mode, built without root and without running them:
// the steps against golden files, and the ordering rules the kernel imposes on them.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { ActionCgroup, CgroupTree } from '../../src/cgroups/index.js';
import { capabilityNumbers } from '../../src/sandbox/capabilities.js';
import { cgroup } from '../../src/sandbox/contributions/cgroup.js';
import type { EngineContext } from '../../src/sandbox/contributions/contribution.js';
import {
  HostIdSlots,
  idMap,
  userNamespace,
} from '../../src/sandbox/contributions/user-namespace.js';
import { defaultActionUserNamespace, defaultIsolation } from '../../src/sandbox/defaults.js';
import { mountTemplates } from '../../src/sandbox/filesystems.js';
import { isolationModes, isolationStrategy } from '../../src/sandbox/modes/registry.js';
import { NetworkNamespacePool } from '../../src/sandbox/network-namespaces.js';
import { cwd, PlanBuilder, runnerStep, type Slot } from '../../src/sandbox/plan.js';
import { PreparedCgroups } from '../../src/sandbox/prepared-cgroups.js';
import type { ActionSpec, IsolationMode, IsolationSettings } from '../../src/sandbox/types.js';
import { constants, type DirectoryHandle } from '../../src/syscalls/index.js';
import { cloneIntoCgroup, MadeNetworkNamespace } from '../../src/syscalls/process.js';
import { limits } from '../helpers/cgroups.js';
import {
  decode,
  outline,
  planFor,
  standInAction,
  standInHost,
  standInHostRootOnly,
} from '../helpers/plans.js';

const golden = (mode: string) =>
  new URL(`../../../test/unit/golden/plan-${mode}.txt`, import.meta.url);

/** The index of the first step with this operation (and description, when given). */
function indexOf(steps: ReturnType<typeof decode>, op: string, description?: RegExp): number {
  const index = steps.findIndex(
    (step) => step.op === op && (description === undefined || description.test(step.description)),
  );
  assert.notEqual(index, -1, `no ${op} step${description ? ` matching ${description}` : ''}`);
  return index;
}

describe('golden plans', () => {
  for (const mode of isolationModes) {
    it(`${mode}: the steps and their descriptions`, () => {
      const actual = `${outline(planFor(mode)).join('\n')}\n`;
      // UPDATE_GOLDEN=1 rewrites the files after an intended change; review the diff.
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden(mode), actual);
      assert.equal(actual, readFileSync(golden(mode), 'utf8'));
    });
  }
});

describe('ordering rules', () => {
  for (const mode of isolationModes) {
    const credentials = { uid: 1000, gid: 1000, additionalGroups: [27] };
    const plan = planFor(mode, mode === 'rootless' ? {} : { spec: { credentials } });
    const steps = decode(plan);

    it(`${mode}: exec is the last step, after close-on-exec of the rest`, () => {
      assert.equal(steps.at(-1)?.op, 'exec');
      assert.ok(indexOf(steps, 'cloexecFrom') < steps.length - 1);
    });

    it(`${mode}: the bounding set is dropped before no_new_privs and the parent death signal`, () => {
      const drop = indexOf(steps, 'dropBoundingCaps');
      assert.ok(drop < indexOf(steps, 'noNewPrivs'));
      assert.ok(indexOf(steps, 'noNewPrivs') < indexOf(steps, 'pdeathsig'));
    });

    it(`${mode}: the parent death signal step polls the runner's pidfd, before the exec`, () => {
      const pdeathsig = steps[indexOf(steps, 'pdeathsig')];
      const runnerSlot = pdeathsig?.args[1] ?? -1;
      assert.equal(plan.build().slots[runnerSlot], standInHost().runnerPidfd?.fd);
      assert.ok(indexOf(steps, 'pdeathsig') < steps.length - 1);
    });

    it(`${mode}: the root is entered before the working directory is`, () => {
      const enter = steps.findIndex((step) =>
        ['pivotRoot', 'coverRoot', 'chroot'].includes(step.op),
      );
      assert.ok(enter >= 0 && enter < indexOf(steps, 'chdir'));
    });
  }

  for (const mode of ['namespaces', 'shared', 'none'] as const) {
    it(`${mode}: the bounding set is dropped before setresuid (which loses CAP_SETPCAP)`, () => {
      const steps = decode(
        planFor(mode, { spec: { credentials: { uid: 1000, gid: 1000, additionalGroups: [] } } }),
      );
      assert.ok(indexOf(steps, 'dropBoundingCaps') < indexOf(steps, 'setCredentials'));
      // prctl(PR_SET_PDEATHSIG) is cleared by a credential change: set after it.
      assert.ok(indexOf(steps, 'setCredentials') < indexOf(steps, 'pdeathsig'));
    });
  }

  it('rootless: no setresuid (the id maps are the credentials), maps written first', () => {
    const steps = decode(planFor('rootless'));
    assert.equal(steps.filter((step) => step.op === 'setCredentials').length, 0);
    assert.deepEqual(
      steps.slice(0, 3).map((step) => step.strings[0]),
      ['/proc/self/setgroups', '/proc/self/gid_map', '/proc/self/uid_map'],
    );
  });

  it('rootless: the tree is a slave before anything is mounted', () => {
    const steps = decode(planFor('rootless'));
    const slave = indexOf(steps, 'setRootPropagation');
    assert.equal(steps[slave]?.args[0], constants.MS_SLAVE);
    const firstMount = steps.findIndex((step) => step.op === 'moveMount');
    assert.ok(slave < firstMount);
  });

  it('namespaces: the input root clone is a slave before the template namespace is entered', () => {
    const steps = decode(planFor('namespaces'));
    const slave = indexOf(steps, 'mountSetattr', /clone the input root/);
    assert.equal(steps[slave]?.args[3], constants.MS_SLAVE);
    assert.ok(slave < indexOf(steps, 'setns'));
    assert.ok(indexOf(steps, 'setns') < indexOf(steps, 'unshare'));
  });

  it('namespaces: the procfs is mounted before what is bound read-only inside it', () => {
    const steps = decode(planFor('namespaces'));
    assert.ok(
      indexOf(steps, 'moveMount', /mount proc/) < indexOf(steps, 'openTree', /\/proc\/sys/),
    );
  });

  it('none: the children list is opened before the chroot and handed to the init as fd 4', () => {
    const steps = decode(planFor('none'));
    assert.ok(indexOf(steps, 'open', /children list/) < indexOf(steps, 'chroot'));
    assert.ok(steps.some((step) => step.op === 'dup2' && step.args[1] === 4));
    assert.equal(steps[indexOf(steps, 'cloexecFrom')]?.args[0], 5);
  });

  it('CAP_SYS_CHROOT is kept only where the action pivoted into a root of its own', () => {
    const chroot = capabilityNumbers.SYS_CHROOT ?? -1;
    for (const mode of isolationModes) {
      const steps = decode(planFor(mode));
      const [low = 0] = steps[indexOf(steps, 'dropBoundingCaps')]?.args ?? [];
      const kept = ((low >> chroot) & 1) === 1;
      assert.equal(kept, isolationStrategy(mode).pivotsIntoRoot, mode);
    }
  });

  it('the init runs as PID 1 where there is a PID namespace, else as a subreaper', () => {
    for (const mode of isolationModes) {
      const plan = planFor(mode);
      const pidNamespace = (plan.build().cloneFlags & constants.CLONE_NEWPID) !== 0;
      const argv = plan.build().strings.toString().split('\0');
      assert.ok(argv.includes(pidNamespace ? 'pid1' : 'subreaper'), mode);
      assert.equal(isolationStrategy(mode).init, pidNamespace ? 'pid1' : 'subreaper');
    }
  });

  it('clone flags: a user namespace only in rootless mode, a network namespace by default', () => {
    for (const mode of isolationModes) {
      const flags = planFor(mode).build().cloneFlags;
      assert.equal((flags & constants.CLONE_NEWUSER) !== 0, mode === 'rootless', mode);
      // namespaces and shared mode's comes from the network contribution, rootless mode's
      // from the mode.
      assert.equal((flags & constants.CLONE_NEWNET) !== 0, mode !== 'none', mode);
      const steps = decode(planFor(mode));
      assert.equal(
        steps.some((step) => step.op === 'loopbackUp'),
        mode !== 'none',
        mode,
      );
      const shared = planFor(mode, { settings: { network: false } });
      assert.equal(shared.build().cloneFlags & constants.CLONE_NEWNET, 0, mode);
      assert.ok(!decode(shared).some((step) => step.op === 'loopbackUp'), mode);
    }
  });

  it('a network namespace made ahead is entered first, instead of the clone flag', async () => {
    for (const mode of ['namespaces', 'shared'] as const) {
      // A real handle on a made-up number, never entered: only its number is read.
      const pool = new NetworkNamespacePool(1, false, {
        create: async () =>
          new MadeNetworkNamespace({ fd: 184, sysfs: -1, fileFds: [], files: [], made: undefined }),
        check: async () => [],
        close: () => {},
      });
      await pool.fill();
      const plan = planFor(mode, { networkNamespaces: pool });
      const steps = decode(plan);
      assert.equal(plan.build().cloneFlags & constants.CLONE_NEWNET, 0, mode);
      assert.ok(!steps.some((step) => step.op === 'loopbackUp'), mode);
      assert.equal(steps[0]?.op, 'setns', mode);
      assert.equal(steps[0]?.args[1], constants.CLONE_NEWNET, mode);
      // Taken: the next action of an empty pool clones its own.
      const next = planFor(mode, { networkNamespaces: pool });
      assert.notEqual(next.build().cloneFlags & constants.CLONE_NEWNET, 0, mode);
    }
  });

  it('without CAP_MKNOD the device nodes are bound instead of made', () => {
    const steps = decode(planFor('namespaces', { host: standInHost(false) }));
    assert.equal(steps.filter((step) => step.op === 'mknodat').length, 0);
    assert.ok(steps.some((step) => step.op === 'openTree' && /\/dev\/null/.test(step.description)));
  });

  it("contributions' steps go in their phases", () => {
    const phase = (description: string) => (plan: PlanBuilder) =>
      plan.noNewPrivileges(runnerStep(description));
    const steps = decode(
      planFor('namespaces', {
        resources: [
          {
            plan: {
              namespaces: phase('first'),
              filesystems: phase('before entering'),
              exec: phase('last'),
            },
            teardown: () => {},
          },
        ],
      }),
    );
    const at = (description: string) => steps.findIndex((step) => step.description === description);
    assert.equal(at('first'), 0);
    assert.equal(at('before entering'), indexOf(steps, 'coverRoot') - 1);
    assert.equal(at('last'), steps.length - 2);
  });

  it('refuses an environment it cannot pass on faithfully', () => {
    assert.throws(() => planFor('namespaces', { spec: { environment: { 'A=B': 'c' } } }), {
      name: 'ActionError',
    });
  });
});

describe('the action’s cgroup (contributions/cgroup.ts)', () => {
  /** The plan of an action whose cgroup is `directories` (made-up fd numbers) of a tree of
   * `version`. */
  function planIn(version: 1 | 2, directories: readonly number[], enterAtClone?: boolean) {
    const action = {
      joinDirectories: directories.map((fd) => ({ fd }) as DirectoryHandle),
      joinFile: version === 2 ? 'cgroup.procs' : 'tasks',
    } as unknown as ActionCgroup;
    const tree = { version, create: () => action } as unknown as CgroupTree;
    // None made ahead: take() creates the action's.
    const cgroups = new PreparedCgroups(tree, limits, 0, enterAtClone);
    const engine = { cgroups } as unknown as EngineContext;
    const files = {} as Parameters<typeof cgroup.prepare>[0]['files'];
    const resource = cgroup.prepare({ engine, spec: standInAction, files });
    return planFor('namespaces', { resources: [resource] });
  }
  const joins = (plan: PlanBuilder) =>
    decode(plan).filter(
      (step) =>
        step.op === 'writeFile' && ['cgroup.procs', 'tasks'].includes(step.strings[0] ?? ''),
    );

  it('v2: the child is cloned into the cgroup, and no step joins it', () => {
    const plan = planIn(2, [300], true);
    assert.equal(plan.build().cgroupFd, 300);
    assert.deepEqual(joins(plan), []);
    assert.equal(decode(plan)[0]?.op, 'unshare');
  });

  it('v2 where the runner cannot clone into it, and v1: the first steps join each directory', () => {
    for (const [plan, directories] of [
      [planIn(2, [300], false), 1],
      [planIn(1, [300, 301]), 2],
    ] as const) {
      assert.equal(plan.build().cgroupFd, -1);
      const steps = decode(plan);
      assert.equal(joins(plan).length, directories);
      assert.deepEqual(steps.slice(0, directories), joins(plan));
      assert.equal(steps[directories]?.op, 'unshare');
    }
  });

  it('v2 clones into the cgroup by default where the addon found it can', () => {
    assert.equal(planIn(2, [300]).build().cgroupFd, cloneIntoCgroup().available ? 300 : -1);
    assert.equal(planIn(1, [300], true).build().cgroupFd, -1);
  });
});

describe('the action’s user namespace (contributions/user-namespace.ts)', () => {
  const base = defaultActionUserNamespace.firstHostId;

  it('maps ids 0 to idCount - 1 to the range, and the request’s other ids to themselves', () => {
    assert.equal(idMap(defaultActionUserNamespace, []), `0 ${base} 65536\n`);
    assert.equal(idMap(defaultActionUserNamespace, [0]), `0 ${base} 65536\n`);
    assert.equal(
      idMap(defaultActionUserNamespace, [1000, 0, 27, 1000, 100000]),
      [
        `0 ${base} 27`,
        '27 27 1',
        `28 ${base + 28} 972`,
        '1000 1000 1',
        '100000 100000 1',
        `1001 ${base + 1001} 64535`,
        '',
      ].join('\n'),
    );
  });

  const engine = (mode: IsolationMode, withRange = true, slots = 256): EngineContext =>
    ({
      settings: {
        ...defaultIsolation,
        mode,
        ...(withRange ? {} : { actionUserNamespace: undefined }),
      },
      strategy: isolationStrategy(mode),
      host: standInHost(),
      hostIdSlots: new HostIdSlots({ ...defaultActionUserNamespace, concurrentActions: slots }),
    }) as unknown as EngineContext;
  const stepsWith = (
    mode: IsolationMode,
    spec: Partial<ActionSpec> = {},
    context = engine(mode),
  ) => {
    const resource = userNamespace.prepare({
      engine: context,
      spec: { ...standInAction, ...spec },
      files: {} as never,
    });
    try {
      return decode(planFor(mode, { spec, resources: [resource] }));
    } finally {
      resource.teardown({ processesGone: true });
    }
  };
  const newUser = (steps: ReturnType<typeof decode>) =>
    steps.findIndex(
      (step) => step.op === 'unshare' && (step.args[0] ?? 0) & constants.CLONE_NEWUSER,
    );

  it('applies to namespaces and shared mode with a range, to no other (rootless only as a runner that may map any ids)', () => {
    for (const mode of isolationModes) {
      const applies = mode === 'namespaces' || mode === 'shared';
      assert.equal(userNamespace.appliesTo(engine(mode)), applies, mode);
      assert.equal(userNamespace.appliesTo(engine(mode, false)), false, mode);
    }
  });

  for (const mode of ['namespaces', 'shared'] as const) {
    it(`${mode}: unshared after the root is made as its owner, mapped, then capabilities and the ids set`, () => {
      const steps = stepsWith(mode);
      const unshared = newUser(steps);
      const mapped = indexOf(steps, 'awaitIdMaps');
      assert.ok(unshared >= 0 && unshared + 1 === mapped);
      assert.deepEqual(steps[mapped]?.strings, [`0 ${base} 65536\n`, `0 ${base} 65536\n`]);
      // The host id of the action's uid 0 becomes the namespace's owner.
      const owner = indexOf(steps, 'becomeNamespaceOwner');
      assert.equal(owner, unshared - 1);
      assert.deepEqual(steps[owner]?.args.slice(0, 2), [base, base]);
      // Moving the root needs the runner's privileges over the mount namespace; a chrooted
      // process may not create a user namespace.
      if (mode === 'namespaces') assert.ok(indexOf(steps, 'coverRoot') < unshared);
      else assert.ok(unshared < indexOf(steps, 'chroot'));
      // A new user namespace fills the bounding set again.
      assert.ok(mapped < indexOf(steps, 'dropBoundingCaps'));
      // Then the namespace's uid 0.
      const credentials = indexOf(steps, 'setCredentials');
      assert.ok(indexOf(steps, 'dropBoundingCaps') < credentials);
      assert.deepEqual(steps[credentials]?.args.slice(0, 2), [0, 0]);
    });
  }

  it('each running action holds a slot of ids of its own, released at teardown', () => {
    const context = engine('namespaces', true, 2);
    const prepare = () =>
      userNamespace.prepare({ engine: context, spec: standInAction, files: {} as never });
    const mapsOf = (resource: ReturnType<typeof prepare>) =>
      decode(planFor('namespaces', { resources: [resource] })).find(
        (step) => step.op === 'awaitIdMaps',
      )?.strings;
    const first = prepare();
    const second = prepare();
    assert.deepEqual(mapsOf(first), [`0 ${base} 65536\n`, `0 ${base} 65536\n`]);
    const next = base + 65536;
    assert.deepEqual(mapsOf(second), [`0 ${next} 65536\n`, `0 ${next} 65536\n`]);
    assert.throws(prepare, { name: 'ActionError', message: /All 2 slots of host ids/ });
    first.teardown({ processesGone: true });
    const third = prepare();
    assert.deepEqual(mapsOf(third), [`0 ${base} 65536\n`, `0 ${base} 65536\n`]);
    // Another engine of the same range (one process serving two configurations) claims
    // slots of its own.
    const other = engine('namespaces', true, 3);
    const beside = userNamespace.prepare({
      engine: other,
      spec: standInAction,
      files: {} as never,
    });
    const last = base + 2 * 65536;
    assert.deepEqual(mapsOf(beside), [`0 ${last} 65536\n`, `0 ${last} 65536\n`]);
    for (const resource of [second, third, beside]) resource.teardown({ processesGone: true });
  });

  it('rootless, a runner that may map any ids: the clone is made as the slot’s uid 0, the runner maps the slot, the child is the namespace’s root after the host clones, the action’s ids last', () => {
    const rootless = {
      ...engine('rootless', true, 2),
      host: standInHost(true, true),
    } as unknown as EngineContext;
    assert.equal(userNamespace.appliesTo(rootless), true);
    const held = userNamespace.prepare({
      engine: rootless,
      spec: standInAction,
      files: {} as never,
    });
    const resource = userNamespace.prepare({
      engine: rootless,
      spec: standInAction,
      files: {} as never,
    });
    const next = base + 65536;
    assert.deepEqual(resource.hostIds, { slot: 1, firstHostId: next, idCount: 65536 });
    assert.equal(resource.plan, undefined);
    const plan = planFor('rootless', {
      host: standInHost(true, true),
      settings: { userNamespace: { uid: 1000, gid: 1001 } },
      resources: [resource],
    });
    const built = plan.build();
    assert.deepEqual([built.cloneOwnerUid, built.cloneOwnerGid], [next, next]);
    assert.ok(built.cloneFlags & constants.CLONE_NEWUSER);
    for (const taken of [held, resource]) taken.teardown({ processesGone: true });
    const steps = decode(plan);
    const mapped = indexOf(steps, 'awaitIdMaps');
    assert.equal(mapped, 0);
    assert.deepEqual(steps[mapped]?.strings, [`0 ${next} 65536\n`, `0 ${next} 65536\n`]);
    assert.equal(steps.filter((step) => step.op === 'writeFile').length, 0);
    const switches = steps.filter((step) => step.op === 'setCredentials');
    assert.deepEqual(
      switches.map((step) => step.args.slice(0, 2)),
      [
        [0, 0],
        [1000, 1001],
      ],
    );
    const root = indexOf(steps, 'setCredentials');
    assert.ok(indexOf(steps, 'openTree', /clone the host's \/dev/) < root);
    assert.ok(root < indexOf(steps, 'fsopen'));
    // Without a range, the runner's own ids, as an unprivileged runner's.
    const own = decode(
      planFor('rootless', {
        host: standInHost(true, true),
        settings: { actionUserNamespace: undefined },
      }),
    );
    assert.equal(own.filter((step) => step.op === 'awaitIdMaps').length, 0);
    assert.equal(own[0]?.strings[0], '/proc/self/setgroups');
    // An unprivileged runner: the runner's own ids, its own namespace, no slot.
    const unprivileged = { ...engine('rootless'), host: standInHost(true, false) };
    assert.equal(userNamespace.appliesTo(unprivileged as unknown as EngineContext), false);
  });

  it('runCommandsAs ids are mapped to themselves and switched to', () => {
    const steps = stepsWith('namespaces', {
      credentials: { uid: 1000, gid: 1001, additionalGroups: [27] },
    });
    const [uidMap, gidMap] = steps[indexOf(steps, 'awaitIdMaps')]?.strings ?? [];
    assert.match(uidMap ?? '', /^1000 1000 1$/m);
    assert.match(gidMap ?? '', /^1001 1001 1$/m);
    assert.match(gidMap ?? '', /^27 27 1$/m);
    assert.deepEqual(steps[indexOf(steps, 'becomeNamespaceOwner')]?.args.slice(0, 2), [base, base]);
    assert.deepEqual(steps[indexOf(steps, 'setCredentials')]?.args.slice(0, 2), [1000, 1001]);
  });
});

describe('PlanBuilder', () => {
  it('refuses strings holding NUL', () => {
    const plan = new PlanBuilder();
    plan.mkdirat(runnerStep('make'), plan.inherit(3), 'a\0b', 0o755);
    assert.throws(() => plan.build(), TypeError);
  });

  it('names the step a failure index refers to', () => {
    const plan = new PlanBuilder();
    plan.unshare(runnerStep('create a mount namespace'), constants.CLONE_NEWNS);
    assert.equal(plan.step(0)?.description, 'create a mount namespace');
    assert.equal(plan.step(1), undefined);
  });

  it('appends a fragment as if its steps were added there: slots and strings renumbered, parameters filled in', () => {
    const steps = (plan: PlanBuilder, root: Slot): Slot => {
      const info = runnerStep('mount');
      const target = plan.open(info, root, 'proc', { flags: 0, resolve: 0 });
      const made = plan.newFilesystem(info, 'proc', { hidepid: '2' }, 0);
      plan.moveMount(info, made, target);
      plan.moveMount(info, made, cwd, 'x');
      plan.setns(info, plan.inherit(51), constants.CLONE_NEWNS);
      plan.parentDeathSignal(info, 9, plan.inherit(50));
      return made;
    };
    const fragmentPlan = new PlanBuilder();
    const root = fragmentPlan.parameter();
    const made = steps(fragmentPlan, root);
    const fragment = fragmentPlan.fragment();
    // A step, a slot and a string before it, and a step after it.
    const direct = new PlanBuilder();
    direct.mkdirat(runnerStep('first'), direct.inherit(40), 'a', 0o755);
    const directMade = steps(direct, direct.inherit(41));
    direct.unshare(runnerStep('last'), constants.CLONE_NEWNS);
    const appended = new PlanBuilder();
    appended.mkdirat(runnerStep('first'), appended.inherit(40), 'a', 0o755);
    const at = appended.append(fragment, [41]);
    appended.unshare(runnerStep('last'), constants.CLONE_NEWNS);
    const built = (plan: PlanBuilder) => {
      const { steps, slots, strings } = plan.build();
      return { steps: [...steps], slots: [...slots], strings: strings.toString() };
    };
    assert.deepEqual(built(appended), built(direct));
    assert.deepEqual(decode(appended), decode(direct));
    assert.equal(at(made), directMade);
    assert.equal(at(cwd), cwd);
    assert.throws(() => appended.append(fragment, []), TypeError);
  });

  it('refuses a fragment of what is the whole plan’s', () => {
    const plan = new PlanBuilder();
    plan.exec(runnerStep('execute'), plan.inherit(3), ['true'], []);
    assert.throws(() => plan.fragment(), TypeError);
  });
});

describe("masks of what the kernel refuses the action's ids", () => {
  const host = standInHost();
  const masksAndBinds = (steps: ReturnType<typeof decode>) =>
    steps
      .filter((step) => step.op === 'moveMount' && /^(mask|bind \/proc)/.test(step.description))
      .map((step) => step.description);
  const skipped = standInHostRootOnly.map((at) => new RegExp(` /${at} `));
  const covers = (descriptions: string[], place: RegExp) =>
    descriptions.some((description) => place.test(`${description} `));

  it('are skipped only where every action has a user namespace whose ids are not the host root', () => {
    const { actionUserNamespace: _, ...withoutRange } = defaultIsolation;
    const rangeFromZero = { ...defaultActionUserNamespace, firstHostId: 0 };
    const cases: [IsolationMode, IsolationSettings, boolean, boolean][] = [
      ['namespaces', defaultIsolation, false, true],
      ['shared', defaultIsolation, false, true],
      ['namespaces', withoutRange, false, false],
      ['shared', withoutRange, false, false],
      ['namespaces', { ...defaultIsolation, actionUserNamespace: rangeFromZero }, false, false],
      // A runner that maps any ids maps the action's to the range; one that cannot, or
      // without a range, to its own uid.
      ['rootless', defaultIsolation, true, true],
      ['rootless', withoutRange, true, process.getuid?.() !== 0],
      ['rootless', defaultIsolation, false, process.getuid?.() !== 0],
      ['none', defaultIsolation, false, false],
    ];
    for (const [mode, settings, mapsAnyIds, expected] of cases) {
      const answer = isolationStrategy(mode).unprivilegedActionIds(
        { ...settings, mode },
        standInHost(true, mapsAnyIds),
      );
      assert.equal(answer, expected, `${mode} ${JSON.stringify(settings.actionUserNamespace)}`);
    }
  });

  it('namespaces mode: none over the host root-only files with the default user namespace, all without it', () => {
    const unprivileged = masksAndBinds(decode(planFor('namespaces', { host })));
    const privileged = masksAndBinds(
      decode(planFor('namespaces', { host, unprivilegedActionIds: false })),
    );
    for (const place of skipped) {
      assert.ok(!covers(unprivileged, place), `${place} made`);
      assert.ok(covers(privileged, place), `${place} not made`);
    }
    // What others may read or write keeps its mount, and /proc/sys always.
    for (const kept of [
      '/proc/sys',
      '/proc/keys',
      '/proc/key-users',
      '/proc/acpi',
      '/sys/firmware',
    ]) {
      assert.ok(covers(unprivileged, new RegExp(` ${kept} `)), kept);
    }
    assert.equal(privileged.length - unprivileged.length, standInHostRootOnly.length);
  });

  it('namespaces mode: no template of a mask the actions never get', () => {
    const subject = { filesystems: defaultIsolation.filesystems, host };
    const unprivileged = mountTemplates({ ...subject, unprivilegedActionIds: true });
    const privileged = mountTemplates({ ...subject, unprivilegedActionIds: false });
    assert.ok(privileged.masks.has('proc/kpageflags'));
    assert.ok(!unprivileged.masks.has('proc/kpageflags'));
    assert.ok(unprivileged.masks.has('proc/keys'));
  });
});
