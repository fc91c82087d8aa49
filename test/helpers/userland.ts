// A full-userland input root built from the host, without network: the host's /usr (hard
// links), /etc (a real copy), the /bin, /lib, /lib64 and /sbin entries as the host has them,
// the Rust toolchain at the paths the host keeps it (rustup's settings, the toolchain in use and
// the cargo home with rustup's proxies), and empty proc, sys, dev and tmp.
//
// Hard links share inodes with the host: an action that rewrote a file of /usr in place would
// change the host's. The acceptance actions write only beneath their own directories.
import { execFileSync } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';

export interface Userland {
  /** Host path of the input root. */
  readonly root: string;
  /** Directory inside the input root holding the real rustc and cargo (not rustup's proxies),
   * the way rules_rust puts a toolchain on PATH. */
  readonly rustToolchainBin: string;
  /** rustup's home and the cargo home with rustup's proxies inside the input root, or null
   * when the host's Rust is not managed by rustup. */
  readonly rustup: { readonly home: string; readonly cargoHome: string } | null;
  /** A PATH for actions inside the input root that finds every tool of the suite. */
  readonly path: string;
  /** A Go build cache inside the input root that every action may write: Go ≥ 1.20 ships no
   * compiled standard library, so the suite's go rows share one and build it once. */
  readonly goCache: string;
  /** How the trees were copied: hard links, or real copies across file systems. */
  readonly copyMethod: 'hard links' | 'copies';
  /** Seconds spent building it. */
  readonly buildSeconds: number;
}

/** Absolute host path of an executable found in the runner's own PATH, or null. */
function findOnHostPath(name: string): string | null {
  for (const entry of (process.env.PATH ?? '').split(delimiter)) {
    if (entry === '') continue;
    const candidate = join(entry, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return null;
}

function firstRegularFile(directory: string): string | null {
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isFile()) return path;
    if (entry.isDirectory()) {
      const found = firstRegularFile(path);
      if (found !== null) return found;
    }
  }
  return null;
}

/** rustup, on PATH or in the cargo home where its installer puts it (CI's PATH may lack it). */
export function findRustup(): string | null {
  const installed = join(process.env.CARGO_HOME ?? join(homedir(), '.cargo'), 'bin/rustup');
  return findOnHostPath('rustup') ?? (existsSync(installed) ? installed : null);
}

/** Whether a file of `source` can be hard-linked into `destinationDirectory`: link() fails
 * with EXDEV across file systems, and across two mounts of the same one. */
function canHardLink(source: string, destinationDirectory: string): boolean {
  const file = firstRegularFile(source);
  if (file === null) return false;
  const probe = join(destinationDirectory, '.hard-link-probe');
  try {
    linkSync(file, probe);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EXDEV') return false;
    throw error;
  }
  unlinkSync(probe);
  return true;
}

/** Copies a host tree to the same absolute path beneath root, by hard links when possible. */
function copyTree(root: string, hostPath: string, hardLinks: boolean): boolean {
  const destination = join(root, hostPath);
  mkdirSync(dirname(destination), { recursive: true });
  const linked = hardLinks && canHardLink(hostPath, dirname(destination));
  execFileSync('cp', [linked ? '-al' : '-a', hostPath, destination]);
  return linked;
}

/** The host's Rust: the directory of the real rustc, and rustup's homes when rustup manages
 * it. Debian's rustc lives in /usr and needs nothing more. */
function hostRust(): { bin: string; rustupHome: string | null; cargoHome: string | null } {
  const rustup = findRustup();
  if (rustup !== null) {
    const rustc = execFileSync(rustup, ['which', 'rustc'], { encoding: 'utf8' }).trim();
    return {
      bin: dirname(realpathSync(rustc)),
      rustupHome: realpathSync(process.env.RUSTUP_HOME ?? join(homedir(), '.rustup')),
      cargoHome: realpathSync(process.env.CARGO_HOME ?? join(homedir(), '.cargo')),
    };
  }
  const rustc = findOnHostPath('rustc');
  if (rustc === null) throw new Error('rustc is not installed on the host');
  return { bin: dirname(realpathSync(rustc)), rustupHome: null, cargoHome: null };
}

/** The bin directory of whichever Go is first on the runner's PATH (e.g. /usr/local/go/bin,
 * or Debian's /usr/lib/go-1.x/bin), or null when there is none. */
export function hostGoBin(): string | null {
  const go = findOnHostPath('go');
  return go === null ? null : dirname(realpathSync(go));
}

/** Builds the input root at `root` (which must not exist yet). */
export function buildUserland(root: string): Userland {
  const started = performance.now();
  mkdirSync(root, { recursive: true });
  const linked = copyTree(root, '/usr', true);
  copyTree(root, '/etc', false);
  // Merged-/usr hosts have /bin → usr/bin etc.; others have real directories.
  for (const name of ['bin', 'lib', 'lib64', 'sbin']) {
    const hostPath = `/${name}`;
    if (!existsSync(hostPath)) continue;
    if (lstatSync(hostPath).isSymbolicLink()) {
      symlinkSync(readlinkSync(hostPath), join(root, name));
    } else {
      copyTree(root, hostPath, true);
    }
  }
  const rust = hostRust();
  if (rust.rustupHome !== null && rust.cargoHome !== null) {
    // rustup's proxies need its settings and the toolchain they select; other toolchains and
    // rustup's downloads would only double the time this takes.
    copyTree(root, dirname(rust.bin), true);
    copyFileSync(
      join(rust.rustupHome, 'settings.toml'),
      join(root, rust.rustupHome, 'settings.toml'),
    );
    copyTree(root, rust.cargoHome, true);
  } else if (!rust.bin.startsWith('/usr/')) {
    copyTree(root, dirname(rust.bin), true);
  }
  // Go finds its GOROOT from its executable's path: the whole tree, when /usr does not hold it.
  const goBin = hostGoBin();
  if (goBin !== null && !goBin.startsWith('/usr/')) copyTree(root, dirname(goBin), true);
  for (const name of ['proc', 'sys', 'dev', 'tmp', 'go-cache']) mkdirSync(join(root, name));
  chmodSync(join(root, 'tmp'), 0o1777);
  if (goBin !== null) {
    // Go ≥ 1.20 ships no compiled standard library: compile what the go row imports into the
    // cache now, once, rather than inside an action under a Run's deadline. Same GOROOT path and
    // settings as the action, so the action finds it in the cache.
    execFileSync(join(goBin, 'go'), ['build', 'fmt', 'os'], {
      env: {
        ...process.env,
        GOCACHE: join(root, 'go-cache'),
        CGO_ENABLED: '0',
        GOFLAGS: '',
        GOTOOLCHAIN: 'local',
      },
      stdio: 'inherit',
    });
  }
  // Every uid writes it: root in the acceptance suite, 65534 in the rootless one.
  execFileSync('chmod', ['-R', 'a+rwX', join(root, 'go-cache')]);
  return {
    root,
    rustToolchainBin: rust.bin,
    rustup:
      rust.rustupHome !== null && rust.cargoHome !== null
        ? { home: rust.rustupHome, cargoHome: rust.cargoHome }
        : null,
    path: [rust.bin, goBin, '/usr/local/bin', '/usr/bin', '/bin'].filter(Boolean).join(':'),
    goCache: '/go-cache',
    copyMethod: linked ? 'hard links' : 'copies',
    buildSeconds: (performance.now() - started) / 1000,
  };
}

/** Removes an input root built by buildUserland. */
export function removeUserland(root: string): void {
  rmSync(root, { recursive: true, force: true });
}
