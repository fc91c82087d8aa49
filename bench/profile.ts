// Summarises a `node --cpu-prof` profile (as written with BENCH_CPU_PROFILE) by module: self
// time per action of each npm package, each directory of dist/src, each part of Node, the
// garbage collector and idle time.
//   node dist/bench/profile.js FILE.cpuprofile ACTIONS
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** The module a function belongs to: `npm <package>`, `src/<dir>`, `node:<part>`, or what
 * V8 calls it ((idle), (garbage collector), (program)). */
function moduleOf({ functionName, url }: ProfileNode['callFrame']): string {
  if (url === '') return functionName || '(anonymous)';
  const npm = /node_modules\/(@[^/]+\/[^/]+|[^/]+)/.exec(url);
  if (npm !== null) return `npm ${npm[1]}`;
  const project = /dist\/(src\/[^/]+|bench|test)/.exec(url);
  if (project !== null) return project[1] as string;
  const internal = /^node:internal\/([^/.]+(?:\/[^/.]+)?)/.exec(url);
  if (internal !== null) return `node:${internal[1]}`;
  return url;
}

function summarise(profile: Profile, actions: number): string {
  const modules = new Map(profile.nodes.map((node) => [node.id, moduleOf(node.callFrame)]));
  const microseconds = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    const name = modules.get(id) ?? '(unknown)';
    microseconds.set(name, (microseconds.get(name) ?? 0) + delta);
    total += delta;
  });
  return [...microseconds]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25)
    .map(([name, time]) => {
      const perAction = (time / 1000 / actions).toFixed(3).padStart(8);
      const share = ((100 * time) / total).toFixed(1).padStart(5);
      return `${perAction} ms/action ${share} %  ${name}`;
    })
    .join('\n');
}

const [file, actions] = process.argv.slice(2);
if (file === undefined || !(Number(actions) > 0)) {
  process.stderr.write('usage: node dist/bench/profile.js FILE.cpuprofile ACTIONS\n');
  process.exitCode = 2;
} else {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  process.stdout.write(`${summarise(profile, Number(actions))}\n`);
}
