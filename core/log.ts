type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export interface LoggerOptions {
  level?: Level;
  write?: (line: string) => void;
  base?: Fields;
  /** The configured key prefix, so that anything shaped like a key is redacted. */
  keyPrefix?: string;
}

/**
 * One JSON object per line. Callers pass ids and masked keys only; as a last guard, any
 * string that looks like a full API key is replaced before the line is written.
 */
export class Logger {
  /** Shared with every child, so that setLevel (a configuration reload) reaches them all. */
  readonly #level: { min: number };
  readonly #write: (line: string) => void;
  readonly #base: Fields;
  readonly #keyPattern: RegExp | null;
  readonly #options: LoggerOptions;

  constructor(options: LoggerOptions = {}, level?: { min: number }) {
    this.#options = options;
    this.#level = level ?? { min: RANK[options.level ?? 'info'] };
    this.#write = options.write ?? ((line) => process.stdout.write(line));
    this.#base = options.base ?? {};
    this.#keyPattern = options.keyPrefix ? new RegExp(`${options.keyPrefix}_[a-z]+_[0-9A-Za-z]{40,}`, 'g') : null;
  }

  child(base: Fields): Logger {
    return new Logger({ ...this.#options, base: { ...this.#options.base, ...base } }, this.#level);
  }

  /** The least level written from now on, by this logger and every child of it. */
  setLevel(level: Level): void {
    this.#level.min = RANK[level];
  }

  enabled(level: Level): boolean {
    return RANK[level] >= this.#level.min;
  }

  log(level: Level, msg: string, fields?: Fields): void {
    if (RANK[level] < this.#level.min) return;
    let line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.#base, ...fields });
    if (this.#keyPattern) line = line.replace(this.#keyPattern, '[redacted]');
    this.#write(`${line}\n`);
  }

  debug(msg: string, fields?: Fields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.log('error', msg, fields);
  }
}
