// A second kernel with cgroup v2 for the tests: Debian's Linux 6.1 under qemu's software
// emulation (a KVM guest hangs here: nested virtualisation), booted with an initramfs built
// here from the static busybox and the 9p modules, the host's / mounted read-only over 9p,
// and the host's node run in a chroot of it, with fresh /proc, /sys, cgroup2, /dev and /tmp.
import { execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const qemu = '/usr/bin/qemu-system-x86_64';
const busybox = '/bin/busybox';

/** The 9p client and its transport, in the order they depend on each other. */
const modules = [
  'drivers/virtio/virtio_ring',
  'drivers/virtio/virtio',
  'drivers/virtio/virtio_pci_legacy_dev',
  'drivers/virtio/virtio_pci_modern_dev',
  'drivers/virtio/virtio_pci',
  'fs/netfs/netfs',
  'fs/fscache/fscache',
  'net/9p/9pnet',
  'net/9p/9pnet_virtio',
  'fs/9p/9p',
];

/** The guest kernel's release: the newest 6.1 installed. */
function guestKernel(): string | undefined {
  return readdirSync('/lib/modules')
    .filter((release) => release.startsWith('6.1.') && existsSync(`/boot/vmlinuz-${release}`))
    .sort()
    .at(-1);
}

/** The guest kernel's release; test/install-packages.sh (npm test's first step) installs
 * qemu-system-x86, linux-image-amd64 and busybox-static. */
function guestRelease(): string {
  const release = guestKernel();
  if (!existsSync(qemu) || !existsSync(busybox) || release === undefined) {
    throw new Error(
      'the guest needs qemu-system-x86, linux-image-amd64 (6.1) and busybox-static: bash test/install-packages.sh',
    );
  }
  return release;
}

const exitMarker = 'chroot-runner-guest-exit';

/** The guest's /init: modules, the host's root, fresh kernel filesystems in it, the command
 * in a chroot there, its exit status on the console, power off. */
function initScript(directory: string, argv: readonly string[]): string {
  const quote = (word: string): string => `'${word.replaceAll("'", "'\\''")}'`;
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root CHROOT_RUNNER_GUEST=1
mkdir -p /proc /sys /dev /host
mount -t proc proc /proc
mount -t devtmpfs dev /dev
for module in ${modules.map((path) => path.split('/').at(-1)).join(' ')}; do insmod /modules/$module.ko; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /host
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/shm /host/dev/pts
mount -t tmpfs shm /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs tmp /host/tmp
# The fresh /tmp hides a checkout beneath the host's /tmp (CI may clone there): its own share.
case ${quote(directory)} in /tmp/*)
  mkdir -p /host${quote(directory)}
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose checkout /host${quote(directory)} ;;
esac
chroot /host /bin/sh -c 'cd "$0" && exec "$@"' ${[directory, ...argv].map(quote).join(' ')}
echo "${exitMarker} $?"
poweroff -f
`;
}

function buildInitramfs(release: string, directory: string, argv: readonly string[]): string {
  const tree = join(directory, 'tree');
  mkdirSync(join(tree, 'bin'), { recursive: true });
  mkdirSync(join(tree, 'modules'));
  copyFileSync(busybox, join(tree, 'bin/busybox'));
  for (const path of modules) {
    copyFileSync(
      `/lib/modules/${release}/kernel/${path}.ko`,
      join(tree, 'modules', `${path.split('/').at(-1)}.ko`),
    );
  }
  writeFileSync(join(tree, 'init'), initScript(process.cwd(), argv), { mode: 0o755 });
  const archive = join(directory, 'initramfs.cpio');
  execFileSync(
    '/bin/sh',
    ['-c', `cd "$1" && find . | ${busybox} cpio -o -H newc > "$2"`, 'sh', tree, archive],
    {
      stdio: ['ignore', 'ignore', 'ignore'],
    },
  );
  return archive;
}

export interface GuestRun {
  /** The command's exit status, or null when the guest ended without reporting one. */
  readonly exitCode: number | null;
  readonly output: string;
}

/** Boots the guest, runs argv in the current directory there, and resolves with its exit
 * status and the console's output once qemu has exited. qemu is killed at `timeoutMs`. */
export async function runInGuest(argv: readonly string[], timeoutMs: number): Promise<GuestRun> {
  const release = guestRelease();
  const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-guest-'));
  try {
    const initramfs = buildInitramfs(release, directory, argv);
    const child = spawn(
      qemu,
      [
        ...['-accel', 'tcg', '-cpu', 'max', '-smp', '2', '-m', '2048'],
        ...['-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot'],
        ...['-kernel', `/boot/vmlinuz-${release}`, '-initrd', initramfs],
        ...['-append', 'console=ttyS0 rdinit=/init panic=-1 edd=off quiet'],
        ...[
          '-virtfs',
          'local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap',
        ],
        ...[
          '-virtfs',
          `local,path=${process.cwd()},mount_tag=checkout,security_model=passthrough,readonly=on,multidevs=remap`,
        ],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      output += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      output += text;
    });
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', () => resolve());
    });
    const status = new RegExp(`^${exitMarker} (\\d+)`, 'm').exec(output);
    return {
      exitCode: status === null ? null : Number(status[1]),
      output: output.replaceAll('\r', ''),
    };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
