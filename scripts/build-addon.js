// The install script: builds the addon with node-gyp against the headers of the Node that runs
// it, found on this machine, so that nothing is downloaded (node-gyp would fetch them from the
// network otherwise). Looks beside the running node first (<prefix>/include/node, as Debian's
// and the official builds install them), then at npm's `nodedir` setting.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

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
// npm gives install scripts the path of its own node-gyp.
const nodeGyp = process.env.npm_config_node_gyp;
const [command, ...prefix] = nodeGyp ? [process.execPath, nodeGyp] : ['node-gyp'];
const build = spawnSync(command, [...prefix, 'rebuild', `--nodedir=${nodedir}`], {
  stdio: 'inherit',
});
process.exitCode = build.status ?? 1;
