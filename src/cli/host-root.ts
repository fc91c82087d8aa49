// An input root made of what every Linux machine has: a few of the host's own programs, with
// the dynamic loader and shared libraries they need, found as the loader finds them, from
// their ELF headers (PT_INTERP, DT_NEEDED, DT_RUNPATH/DT_RPATH) and the host's library
// directories. No package needs to be installed for it; `demo` and `doctor --probe` use it.
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** What an ELF file asks of the dynamic loader. */
interface ElfObject {
  /** ELF class and machine: a library must match the program that loads it. */
  readonly kind: string;
  readonly interpreter: string | null;
  readonly needed: readonly string[];
  readonly searchPath: readonly string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

/** Parses the program headers and the dynamic section of the ELF file at `path`, or returns
 * null when it is not an ELF file. */
function readElf(path: string): ElfObject | null {
  const file = readFileSync(path);
  if (file.length < 64 || file.readUInt32BE(0) !== 0x7f454c46) return null;
  const is64 = file[4] === 2;
  const little = file[5] === 1;
  const u16 = (at: number) => (little ? file.readUInt16LE(at) : file.readUInt16BE(at));
  const u32 = (at: number) => (little ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const word = (at: number): bigint =>
    is64 ? (little ? file.readBigUInt64LE(at) : file.readBigUInt64BE(at)) : BigInt(u32(at));
  const phoff = Number(word(is64 ? 32 : 28));
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  const segments = Array.from({ length: phnum }, (_, index) => {
    const at = phoff + index * phentsize;
    // Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz; Elf32_Phdr: type, offset, vaddr,
    // paddr, filesz.
    return is64
      ? { type: u32(at), offset: word(at + 8), vaddr: word(at + 16), filesz: word(at + 32) }
      : { type: u32(at), offset: word(at + 4), vaddr: word(at + 8), filesz: word(at + 16) };
  });
  const cString = (at: number) => file.toString('latin1', at, file.indexOf(0, at));
  const interp = segments.find((segment) => segment.type === PT_INTERP);
  const dynamic = segments.find((segment) => segment.type === PT_DYNAMIC);
  const entries: [bigint, bigint][] = [];
  const entrySize = is64 ? 16 : 8;
  for (
    let at = Number(dynamic?.offset ?? 0n);
    dynamic && at < Number(dynamic.offset + dynamic.filesz);
    at += entrySize
  ) {
    const tag = word(at);
    if (tag === 0n) break;
    entries.push([tag, word(at + entrySize / 2)]);
  }
  // DT_STRTAB is an address: the file offset is found through the PT_LOAD segment holding it.
  const strtab = entries.find(([tag]) => tag === DT_STRTAB)?.[1];
  const load = segments.find(
    (segment) =>
      segment.type === PT_LOAD &&
      strtab !== undefined &&
      strtab >= segment.vaddr &&
      strtab < segment.vaddr + segment.filesz,
  );
  const string = (offset: bigint) =>
    load === undefined || strtab === undefined
      ? ''
      : cString(Number(strtab - load.vaddr + load.offset + offset));
  const values = (wanted: bigint) =>
    entries.filter(([tag]) => tag === wanted).map(([, value]) => string(value));
  const runpath = values(DT_RUNPATH);
  // The loader ignores DT_RPATH when DT_RUNPATH is present.
  const searchPath = (runpath.length > 0 ? runpath : values(DT_RPATH))
    .flatMap((list) => list.split(':'))
    .filter((directory) => directory !== '')
    .map((directory) => directory.replace(/\$(ORIGIN|\{ORIGIN\})/g, dirname(realpathSync(path))));
  return {
    kind: `${file[4]}/${u16(18)}`,
    interpreter: interp === undefined ? null : cString(Number(interp.offset)),
    needed: values(DT_NEEDED),
    searchPath,
  };
}

/** The directories of /etc/ld.so.conf, following its `include` lines (with `*` patterns). */
function configuredLibraryDirectories(file = '/etc/ld.so.conf'): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const directories: string[] = [];
  for (const line of text.split('\n').map((entry) => entry.replace(/#.*/, '').trim())) {
    if (line === '') continue;
    if (!line.startsWith('include ')) {
      directories.push(line);
      continue;
    }
    const pattern = line.slice('include '.length).trim();
    const directory = dirname(pattern);
    const name = new RegExp(
      `^${basename(pattern)
        .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')}$`,
    );
    let names: string[];
    try {
      names = readdirSync(directory)
        .filter((entry) => name.test(entry))
        .sort();
    } catch {
      continue;
    }
    for (const entry of names)
      directories.push(...configuredLibraryDirectories(join(directory, entry)));
  }
  return directories;
}

/** Where the loader looks after an object's own search path: ld.so.conf's directories (as its
 * cache records them), then the usual built-in ones. */
const libraryDirectories = [
  ...configuredLibraryDirectories(),
  '/lib64',
  '/usr/lib64',
  '/lib',
  '/usr/lib',
];

/** The host path of library `name` as the loader would find it for an object of `kind`. */
function findLibrary(name: string, kind: string, searchPath: readonly string[]): string {
  if (name.includes('/')) return name;
  for (const directory of [...searchPath, ...libraryDirectories]) {
    const candidate = join(directory, name);
    if (existsSync(candidate) && readElf(candidate)?.kind === kind) return candidate;
  }
  throw new Error(`cannot find ${name}, a shared library that a program of the input root needs`);
}

/** The host path of program `name`, as a shell's PATH lookup would find it. */
function findProgram(name: string): string {
  const path = `${process.env.PATH ?? ''}:/usr/bin:/bin`;
  for (const directory of path.split(':').filter((entry) => entry.startsWith('/'))) {
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  throw new Error(`cannot find ${name} on this host`);
}

/** What populateHostRoot copied: each program's host file, and the loader and libraries. */
export interface HostRoot {
  readonly programs: ReadonlyMap<string, string>;
  readonly libraries: readonly string[];
}

/** Lays out an input root at `root`: each program as bin/<name> (a copy of the host's file,
 * symlinks resolved), the loader and every shared library they need at the paths where the
 * host has them, the host's loader cache (/etc/ld.so.cache) when there is one, and empty proc,
 * sys, dev and tmp directories. */
export function populateHostRoot(root: string, programs: readonly string[]): HostRoot {
  for (const directory of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) {
    mkdirSync(join(root, directory), { recursive: true });
  }
  const copied = new Map<string, string>();
  const libraries = new Set<string>();
  const pending: { path: string; object: ElfObject }[] = [];
  const copyLibrary = (path: string) => {
    if (libraries.has(path)) return;
    libraries.add(path);
    mkdirSync(join(root, dirname(path)), { recursive: true });
    copyFileSync(path, join(root, path));
    const object = readElf(path);
    if (object !== null) pending.push({ path, object });
  };
  for (const name of programs) {
    const host = realpathSync(findProgram(name));
    copyFileSync(host, join(root, 'bin', name));
    copied.set(name, host);
    const object = readElf(host);
    if (object === null) continue;
    if (object.interpreter !== null) copyLibrary(object.interpreter);
    pending.push({ path: host, object });
  }
  for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
    for (const name of next.object.needed) {
      copyLibrary(findLibrary(name, next.object.kind, next.object.searchPath));
    }
  }
  if (existsSync('/etc/ld.so.cache'))
    copyFileSync('/etc/ld.so.cache', join(root, 'etc/ld.so.cache'));
  return { programs: copied, libraries: [...libraries] };
}
