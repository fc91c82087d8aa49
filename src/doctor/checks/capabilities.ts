import { capabilityNumbers } from '../../sandbox/capabilities.js';
import { type DoctorCheck, ok } from '../check.js';

/** A capability set in few words: "all", "none", "all but X,Y" or the list. */
function describeSet(names: readonly string[]): string {
  const missing = Object.keys(capabilityNumbers).filter((name) => !names.includes(name));
  if (missing.length === 0) return 'all';
  if (names.length === 0) return 'none';
  return missing.length < names.length ? `all but ${missing.join(',')}` : names.join(',');
}

export const capabilities: DoctorCheck = {
  id: 'capabilities',
  title: 'capabilities',
  run({ privileges: { uid, effective, bounding } }) {
    return ok(
      `uid ${uid}; effective: ${describeSet(effective)}; bounding set: ${describeSet(bounding)}`,
    );
  },
};
