// The execution engine's API: an Engine runs actions chrooted into their input roots (see
// engine.ts), isolated as types.ts's settings say.
export { defaultCapabilities } from './capabilities.js';
export { defaultFilesystems, defaultIsolation } from './defaults.js';
export { Engine, type EngineOptions, temporaryDirectoryPath } from './engine.js';
export { isolationModes, isolationStrategy } from './modes/registry.js';
export * from './types.js';
