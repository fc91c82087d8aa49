import { isSystemError } from '../../syscalls/index.js';
import { jsonnetLibrary, jsonnetVersion } from '../../syscalls/jsonnet.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

/** Configuration files are Jsonnet, as bb_runner's; without libjsonnet only plain JSON loads. */
export const jsonnet: DoctorCheck = {
  id: 'jsonnet',
  title: `Jsonnet configurations (${jsonnetLibrary.name})`,
  run() {
    try {
      return ok(`libjsonnet ${jsonnetVersion()}`);
    } catch (error) {
      if (!isSystemError(error, 'ELIBACC')) throw error;
      return unavailable(
        `${jsonnetLibrary.name} cannot be loaded: only plain JSON configuration files are read`,
        jsonnetLibrary.fix,
      );
    }
  },
};
