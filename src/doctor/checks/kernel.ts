import { release } from 'node:os';
import { type DoctorCheck, ok, unavailable } from '../check.js';

export const kernel: DoctorCheck = {
  id: 'kernel',
  title: 'kernel',
  run() {
    const text = release();
    const [, major = '0', minor = '0'] = /^(\d+)\.(\d+)/.exec(text) ?? [];
    if (Number(major) > 5 || (Number(major) === 5 && Number(minor) >= 12)) {
      return ok(`Linux ${text}`);
    }
    return unavailable(
      `Linux ${text}: older than 5.12 (mount_setattr)`,
      'upgrade the kernel to Linux ≥ 5.12',
    );
  },
};
