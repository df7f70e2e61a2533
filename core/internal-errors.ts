import { formatDetail, type ConfigDetail } from './validation.js';

// The errors Keygate's modules throw to each other, in one place. Each has a `name` (what a
// stack trace and a log line show) and a stable `code` (what callers test, never the message).
// None is sent to a client as is: the planes map them to the HTTP errors of core/errors.ts
// (docs/architecture.md, Error body), e.g. StoreUnavailableError to 503.
//
// | class                  | code                        | raised when                                    |
// |------------------------|-----------------------------|------------------------------------------------|
// | ConfigError            | KEYGATE_CONFIG_INVALID      | the configuration file does not validate       |
// | StoreLockedError       | KEYGATE_STORE_LOCKED        | another live process holds the file store, or  |
// |                        |                             | keeps the SQLite database locked at start      |
// | StoreDamagedError      | KEYGATE_STORE_DAMAGED       | the database is not one Keygate can use: not a |
// |                        |                             | database, corrupt, or of a newer schema        |
// | StoreUnavailableError  | KEYGATE_STORE_UNAVAILABLE   | the store cannot be reached or cannot persist  |
// | VersionConflictError   | KEYGATE_VERSION_CONFLICT    | a compare-and-set write lost to another writer |
// | InvalidCursorError     | KEYGATE_INVALID_CURSOR      | a list cursor was not made by this store       |

/** The configuration does not validate; `details` lists every problem found. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'KEYGATE_CONFIG_INVALID';
  readonly details: ConfigDetail[];
  constructor(source: string, details: ConfigDetail[]) {
    super(`${source}: invalid configuration\n${details.map((d) => formatDetail(source, d)).join('\n')}`);
    this.details = details;
  }
}

/** The file store's directory is held by another live process (its LOCK file), or the SQLite database stayed locked. */
export class StoreLockedError extends Error {
  override readonly name = 'StoreLockedError';
  readonly code = 'KEYGATE_STORE_LOCKED';
}

/**
 * The store's data cannot be used as it is: a file that is not a SQLite database, a corrupt
 * one, one written by a newer Keygate, or one of another program. Retrying will not help.
 */
export class StoreDamagedError extends Error {
  override readonly name = 'StoreDamagedError';
  readonly code = 'KEYGATE_STORE_DAMAGED';
}

/** Raised when a write's expected version no longer matches: somebody wrote first. */
export class VersionConflictError extends Error {
  override readonly name = 'VersionConflictError';
  readonly code = 'KEYGATE_VERSION_CONFLICT';
}

/** Raised when the store cannot be reached or cannot persist; callers answer 503. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  readonly code = 'KEYGATE_STORE_UNAVAILABLE';
  /**
   * True when a write was sent but not answered in time: the store may still apply it (whole,
   * never in part). False when it certainly was not applied.
   */
  readonly uncertain: boolean;

  constructor(message: string, options: ErrorOptions & { uncertain?: boolean } = {}) {
    super(message, options);
    this.uncertain = options.uncertain ?? false;
  }
}

/** A list cursor this store did not make (or made for another query). */
export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError';
  readonly code = 'KEYGATE_INVALID_CURSOR';
}
