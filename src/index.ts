// The package's entry point (package.json's main): the execution engine, and the runner
// server built on it with its configuration, for embedding chroot-runner in a program.
export * from './sandbox/index.js';
export {
  type ApplicationConfiguration,
  ConfigurationError,
  loadConfiguration,
  parseConfiguration,
} from './server/config.js';
export { type RunningServer, type StartOptions, startServer } from './server/serve.js';
