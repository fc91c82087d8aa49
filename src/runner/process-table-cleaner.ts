// cleanProcessTable: kills processes that actions left running, i.e. every process of the
// actions' user that started after the runner (as bb_runner does: never enable it when that
// user also runs unrelated processes).
import { readdir, readFile } from 'node:fs/promises';
import type { Cleaner } from './cleaner.js';

/** Start time of a process in clock ticks since boot (/proc/PID/stat field 22). */
function startTime(stat: string): number {
  // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[19]);
}

function realUid(statusText: string): number {
  const match = /^Uid:\s+(\d+)/m.exec(statusText);
  return match === null ? -1 : Number(match[1]);
}

export async function processTableCleaner(userId: number): Promise<Cleaner> {
  const runnerStart = startTime(await readFile('/proc/self/stat', 'utf8'));
  return async () => {
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (pid === process.pid) continue;
      let stat: string;
      let statusText: string;
      try {
        [stat, statusText] = await Promise.all([
          readFile(`/proc/${pid}/stat`, 'utf8'),
          readFile(`/proc/${pid}/status`, 'utf8'),
        ]);
      } catch {
        continue; // exited meanwhile
      }
      if (realUid(statusText) !== userId || startTime(stat) <= runnerStart) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    }
  };
}
