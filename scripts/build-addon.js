// The install script, and with `prebuild` the prepack script: builds the addon with node-gyp
// against the headers of the Node that runs it, found on this machine, so that nothing is
// downloaded (node-gyp would fetch them from the network otherwise). Looks beside the running
// node first (<prefix>/include/node, as Debian's and the official builds install them), then
// at npm's `nodedir` setting.
//
//   node scripts/build-addon.js            install: the prebuilt addon if it loads, else a build
//   node scripts/build-addon.js prebuild   prepack: prebuilds/<platform>-<arch>/ for the package
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const packageRoot = dirname(dirname(fileURLToPath(import.meta.url)));

/** Runs a command to its end with our stdio; exits with its status when it fails. */
function run(command, args, env = process.env) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: packageRoot, env });
  if (result.error !== undefined) {
    process.stderr.write(`chroot-runner: cannot run ${command}: ${result.error.message}\n`);
    process.exit(1);
  }
  if (result.status !== 0) process.exit(result.status ?? 1);
}

// A package made by `npm pack` carries the addon prebuilt for its platform: when
// node-gyp-build loads it here, there is nothing to build. A source checkout has no
// prebuilds/, and always builds.
if (process.argv[2] !== 'prebuild' && existsSync(join(packageRoot, 'prebuilds'))) {
  process.env.PREBUILDS_ONLY = '1';
  try {
    require('node-gyp-build')(packageRoot);
    process.exit(0);
  } catch {
    // None for this platform, or it does not load (e.g. an older C library): build it.
  }
}

const candidates = [dirname(dirname(process.execPath)), process.env.npm_config_nodedir];
const nodedir = candidates.find(
  (prefix) => prefix && existsSync(join(prefix, 'include/node/node_api.h')),
);
if (nodedir === undefined) {
  process.stderr.write(
    `chroot-runner: Node's headers (include/node/node_api.h) are not in ${candidates.filter(Boolean).join(' or ')}; ` +
      "install them with Node (Debian: they come with nodejs or libnode-dev), or set npm's nodedir\n",
  );
  process.exit(1);
}
// npm gives install scripts the path of its own node-gyp; run by hand, the script uses the one
// bundled with the npm installed beside this node, then one on PATH.
const bundledNodeGyp = join(
  dirname(dirname(process.execPath)),
  'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
);
const nodeGyp =
  process.env.npm_config_node_gyp ?? (existsSync(bundledNodeGyp) ? bundledNodeGyp : undefined);
const [command, ...prefix] = nodeGyp ? [process.execPath, nodeGyp] : ['node-gyp'];

if (process.argv[2] === 'prebuild') {
  // prebuildify builds (node-gyp rebuild, reading nodedir from npm's environment) and moves the
  // addon into prebuilds/, named as node-gyp-build looks for it; the init goes beside it.
  const env = { ...process.env, npm_config_nodedir: nodedir };
  run(
    process.execPath,
    [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--tag-libc'],
    env,
  );
  const release = join(packageRoot, 'build/Release');
  const prebuilt = join(packageRoot, `prebuilds/${process.platform}-${process.arch}`);
  copyFileSync(join(release, 'chroot-runner-init'), join(prebuilt, 'chroot-runner-init'));
  // Put this checkout's addon back where prebuildify took it from.
  run(command, [...prefix, 'build', `--nodedir=${nodedir}`]);
} else {
  run(command, [...prefix, 'rebuild', `--nodedir=${nodedir}`]);
}
