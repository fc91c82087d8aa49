// A small validator for JSON configuration: each parser checks one value and names its key path
// (e.g. grpcServers[0].listenPaths[1]) in every error. Hand-written rather than a library so
// that keys bb_runner knows but chroot-runner does not support get an error saying why.
// Objects follow protojson, as bb_runner parses its configuration: a field may be named in
// lowerCamelCase or by its proto name in snake_case, and null stands for an absent field.

export class ConfigurationError extends Error {
  override readonly name = 'ConfigurationError';
}

/** Checks a value found at `path` (undefined when the key is absent) and returns it typed. */
export type Parser<T> = (value: unknown, path: string) => T;

function fail(path: string, message: string): never {
  throw new ConfigurationError(`${path === '' ? 'configuration' : path}: ${message}`);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

function required(value: unknown, path: string, expected: string): void {
  if (value === undefined) fail(path, `missing; expected ${expected}`);
}

export const string: Parser<string> = (value, path) => {
  required(value, path, 'a string');
  if (typeof value !== 'string') fail(path, `expected a string, got ${describe(value)}`);
  return value;
};

export const boolean: Parser<boolean> = (value, path) => {
  required(value, path, 'true or false');
  if (typeof value !== 'boolean') fail(path, `expected true or false, got ${describe(value)}`);
  return value;
};

/** An integer; protobuf's JSON mapping also allows 64-bit integers as decimal strings. */
export function integer(minimum: number, maximum: number): Parser<number> {
  return (value, path) => {
    required(value, path, 'an integer');
    const number =
      typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : (value as number);
    if (typeof number !== 'number' || !Number.isInteger(number)) {
      fail(path, `expected an integer, got ${describe(value)}`);
    }
    if (number < minimum || number > maximum) {
      fail(path, `expected an integer from ${minimum} to ${maximum}, got ${number}`);
    }
    return number;
  };
}

/** One of a fixed set of strings. */
export function oneOf<T extends string>(choices: readonly T[]): Parser<T> {
  return (value, path) => {
    const text = string(value, path);
    if (!(choices as readonly string[]).includes(text)) {
      fail(path, `expected one of ${choices.join(', ')}, got ${JSON.stringify(text)}`);
    }
    return text as T;
  };
}

/** A protobuf JSON Duration ("30s", "1.5s"), returned in milliseconds. */
export const duration: Parser<number> = (value, path) => {
  const text = string(value, path);
  const match = /^(\d+(?:\.\d{1,9})?)s$/.exec(text);
  if (match === null) fail(path, `expected a duration such as "30s", got ${JSON.stringify(text)}`);
  return Number(match[1]) * 1000;
};

/** An absolute path. */
export const absolutePath: Parser<string> = (value, path) => {
  const text = string(value, path);
  if (!text.startsWith('/')) fail(path, `expected an absolute path, got ${JSON.stringify(text)}`);
  return text;
};

export function array<T>(item: Parser<T>): Parser<T[]> {
  return (value, path) => {
    required(value, path, 'an array');
    if (!Array.isArray(value)) fail(path, `expected an array, got ${describe(value)}`);
    return value.map((element, index) => item(element, `${path}[${index}]`));
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A map with string keys (protobuf map<string, T>). */
export function record<T>(item: Parser<T>): Parser<Record<string, T>> {
  return (value, path) => {
    required(value, path, 'an object');
    if (!isObject(value)) fail(path, `expected an object, got ${describe(value)}`);
    return Object.fromEntries(
      Object.entries(value).map(([key, element]) => [key, item(element, join(path, key))]),
    );
  };
}

/** Any JSON object, taken as is (e.g. authentication metadata). */
export const anyObject: Parser<Record<string, unknown>> = (value, path) => {
  required(value, path, 'an object');
  if (!isObject(value)) fail(path, `expected an object, got ${describe(value)}`);
  return value;
};

/** The parser, or `fallback` when the key is absent. */
export function optional<T>(parser: Parser<T>, fallback: T): Parser<T>;
export function optional<T>(parser: Parser<T>): Parser<T | undefined>;
export function optional<T>(parser: Parser<T>, fallback?: T): Parser<T | undefined> {
  return (value, path) => (value === undefined ? fallback : parser(value, path));
}

type Shape = Record<string, Parser<unknown>>;
type Parsed<S extends Shape> = { [K in keyof S]: ReturnType<S[K]> };

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** protojson's other name of a field: its proto name (listenPaths → listen_paths). */
function protoName(camelCase: string): string {
  return camelCase.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** An object with exactly the keys of `shape`, each also accepted by its proto name; a null
 * value is an absent field. `unsupported` maps keys that are valid in bb_runner's schema but
 * not supported here to the reason, given in the error. */
export function object<S extends Shape>(
  shape: S,
  unsupported: Readonly<Record<string, string>> = {},
): Parser<Parsed<S>> {
  const names = new Map<string, string>();
  for (const key of [...Object.keys(shape), ...Object.keys(unsupported)]) {
    names.set(key, key);
    names.set(protoName(key), key);
  }
  return (value, path) => {
    required(value, path, 'an object');
    if (!isObject(value)) fail(path, `expected an object, got ${describe(value)}`);
    const fields: Record<string, unknown> = {};
    for (const [name, field] of Object.entries(value)) {
      const key = names.get(name);
      if (key === undefined) {
        fail(join(path, name), `unknown key (known keys: ${Object.keys(shape).join(', ')})`);
      }
      if (Object.hasOwn(fields, key)) fail(join(path, name), `duplicate of ${key}`);
      fields[key] = field;
      if (field === null) continue;
      const reason = unsupported[key];
      if (reason !== undefined) fail(join(path, key), `not supported: ${reason}`);
    }
    const result: Record<string, unknown> = {};
    for (const [key, parser] of Object.entries(shape)) {
      const field = fields[key];
      result[key] = parser(field === null ? undefined : field, join(path, key));
    }
    return result as Parsed<S>;
  };
}

/** Exactly one of the keys of `shape` is set (a protobuf oneof). */
export function oneOfKeys<S extends Shape>(shape: S): Parser<Partial<Parsed<S>>> {
  return (value, path) => {
    const parsed = object(
      Object.fromEntries(Object.entries(shape).map(([key, parser]) => [key, optional(parser)])),
    )(value, path) as Record<string, unknown>;
    const present = Object.keys(parsed).filter((key) => parsed[key] !== undefined);
    if (present.length !== 1) {
      fail(path, `expected exactly one of ${Object.keys(shape).join(', ')}`);
    }
    return Object.fromEntries(present.map((key) => [key, parsed[key]])) as Partial<Parsed<S>>;
  };
}
