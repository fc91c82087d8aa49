// The typed façade over native/jsonnet.c: libjsonnet, the official Jsonnet implementation,
// loaded at run time (libjsonnet.so.0, Debian's libjsonnet0).
import { native } from './native.js';

/** The library the addon loads, and how to install it when it is missing. */
export const jsonnetLibrary = {
  name: 'libjsonnet.so.0',
  fix: 'apt-get install libjsonnet0',
} as const;

/** libjsonnet's version ("v0.18.0"). Throws a system error ELIBACC (syscall "dlopen") when
 * the library cannot be loaded. */
export function jsonnetVersion(): string {
  return native.jsonnetVersion() as string;
}

/** The JSON text that `snippet`, read from `filename` (imports are relative to its directory),
 * evaluates to with `extVars` as external string variables. Throws ELIBACC as
 * jsonnetVersion, and an Error with code ERR_JSONNET_EVALUATION and `path` for the
 * evaluator's own errors. */
export function evaluateJsonnet(
  filename: string,
  snippet: string,
  extVars: Readonly<Record<string, string>>,
): string {
  return native.evaluateJsonnet(filename, snippet, Object.entries(extVars)) as string;
}
