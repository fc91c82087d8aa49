// The table of special mounts, and what is derived from it without a kernel: which entries
// each setting enables, the sweep's recognition of their mountpoints.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultFilesystems } from '../../src/sandbox/defaults.js';
import { mountDescription } from '../../src/sandbox/filesystems.js';
import {
  deviceNodeNames,
  enabledSpecialMounts,
  isSpecialMountpoint,
  nameOf,
  parentOf,
  specialMounts,
} from '../../src/sandbox/special-mounts.js';

describe('special mounts', () => {
  it('lists every parent before what is made inside it', () => {
    const seen = new Set<string>();
    for (const entry of specialMounts) {
      const parent = parentOf(entry);
      if (parent !== undefined) assert.ok(seen.has(parent), `${entry.at} before ${parent}`);
      seen.add(entry.at);
    }
  });

  it('makes each place once, each one enabled by the setting of its top-level directory', () => {
    const places = specialMounts.map((entry) => entry.at);
    assert.equal(new Set(places).size, places.length);
    for (const entry of specialMounts) assert.equal(entry.at.split('/')[0], entry.enabledBy);
  });

  it('gives every node of /dev and nothing else a device-node source', () => {
    const nodes = specialMounts.filter((entry) => entry.source.kind === 'deviceNode');
    assert.deepEqual(
      nodes.map((entry) => entry.at),
      deviceNodeNames.map((name) => `dev/${name}`),
    );
  });

  it("is nosuid everywhere and nodev except where the action's devices are", () => {
    const devices = new Set(['dev', 'dev/pts', ...deviceNodeNames.map((name) => `dev/${name}`)]);
    // A masked file is covered by the host's /dev/null.
    for (const entry of specialMounts) {
      if (entry.source.kind === 'masked' && entry.source.type === 'file') devices.add(entry.at);
    }
    for (const entry of specialMounts) {
      if (entry.source.kind === 'symlink') continue;
      assert.equal(entry.attributes.nosuid, true, `${entry.at} is nosuid`);
      assert.equal(entry.attributes.nodev === true, !devices.has(entry.at), `${entry.at} nodev`);
    }
  });

  it('masks the host-wide kernel internals, inside the procfs or sysfs, and nothing toolchains read', () => {
    const masks = specialMounts.filter((entry) => entry.source.kind === 'masked');
    const at = masks.map((entry) => entry.at);
    for (const place of ['proc/timer_list', 'proc/keys', 'proc/kpageflags', 'sys/firmware']) {
      assert.ok(at.includes(place), place);
    }
    for (const entry of masks) {
      assert.ok(['proc', 'sys'].includes(parentOf(entry) ?? ''), entry.at);
      assert.equal(`${parentOf(entry)}/${nameOf(entry)}`, entry.at);
    }
    const powercap = masks.find((entry) => entry.at === 'sys/devices/virtual/powercap');
    assert.ok(powercap);
    assert.equal(nameOf(powercap), 'devices/virtual/powercap');
    const kept = ['proc/cpuinfo', 'proc/meminfo', 'proc/self', 'proc/sys', 'sys/devices', 'sys/fs'];
    for (const place of kept) {
      assert.ok(!at.some((mask) => place === mask || place.startsWith(`${mask}/`)), place);
    }
  });

  it('binds the host device nodes and the kernel files read-only, and masks read-only', () => {
    for (const entry of specialMounts) {
      const readOnly =
        entry.source.kind === 'deviceNode' ||
        entry.source.kind === 'readOnlyOverItself' ||
        entry.source.kind === 'masked';
      if (readOnly) assert.equal(entry.attributes.readonly, true, entry.at);
    }
    assert.equal(specialMounts.find((entry) => entry.at === 'sys')?.attributes.readonly, true);
  });

  it('enables entries by the settings', () => {
    assert.equal(enabledSpecialMounts(defaultFilesystems).length, specialMounts.length);
    const withoutDev = enabledSpecialMounts({ ...defaultFilesystems, dev: false });
    assert.ok(withoutDev.every((entry) => !entry.at.startsWith('dev')));
    assert.ok(withoutDev.some((entry) => entry.at === 'proc'));
    const none = enabledSpecialMounts({
      ...defaultFilesystems,
      proc: false,
      sys: false,
      dev: false,
      tmp: false,
    });
    assert.deepEqual(none, []);
  });

  it('passes the procfs options from the settings', () => {
    const proc = specialMounts.find((entry) => entry.at === 'proc');
    assert.ok(proc?.source.kind === 'filesystem');
    assert.deepEqual(
      proc.source.options({ ...defaultFilesystems, procOptions: { subset: 'pid' } }),
      { subset: 'pid' },
    );
  });

  it('describes each entry as errors name it', () => {
    const described = (at: string) => {
      const entry = specialMounts.find((candidate) => candidate.at === at);
      assert.ok(entry, at);
      return mountDescription(entry);
    };
    assert.equal(described('proc'), 'mount proc at /proc');
    assert.equal(described('dev'), 'mount a tmpfs at /dev');
    assert.equal(described('dev/pts'), 'mount devpts at /dev/pts');
    assert.equal(described('dev/null'), "bind the host's /dev/null");
    assert.equal(described('proc/sys'), 'bind /proc/sys read-only');
    assert.equal(described('sys/firmware'), 'mask /sys/firmware');
    assert.equal(described('tmp'), 'bind the temporary directory at /tmp');
  });
});

describe('stale-mount recognition', () => {
  it('recognises the mounts of an input root at any depth', () => {
    for (const path of [
      'root/proc',
      'a/b/root/dev/pts',
      'x/root/proc/sys',
      'root/dev/null',
      'root/sys/devices/virtual/powercap',
      'r/tmp',
    ]) {
      assert.equal(isSpecialMountpoint(path), true, path);
    }
  });

  it('ignores other mounts, and the symlinks of /dev', () => {
    for (const path of ['root/home', 'root/dev/fd', 'root/dev/other', 'root/procfs', 'root']) {
      assert.equal(isSpecialMountpoint(path), false, path);
    }
  });
});
