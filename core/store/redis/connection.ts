import { Cluster, Redis, type RedisOptions } from 'ioredis';

export interface RedisStoreOptions {
  /** `redis://` or `rediss://` URL of a single node (or the master, with sentinels). */
  url?: string | undefined;
  sentinels?: { host: string; port: number }[] | undefined;
  /** Master name known to the sentinels. */
  name?: string | undefined;
  cluster?: { host: string; port: number }[] | undefined;
  password?: string | null | undefined;
  /** Key-name prefix; everything of one deployment shares it. */
  prefix: string;
  /** A command that takes longer fails (the caller answers 503) rather than hanging a request. */
  commandTimeoutMs: number;
  /** How long `open` waits for a first connection before starting degraded. */
  connectTimeoutMs: number;
  warn?: (msg: string, fields: Record<string, unknown>) => void;
  /**
   * How long a write that changed keys waits for every live gateway process to acknowledge
   * that it dropped them from its cache (0: not at all). Past it the write answers anyway.
   */
  invalidationWaitMs?: number;
}

export type Warn = NonNullable<RedisStoreOptions['warn']>;

export type Client = Redis | Cluster;

/** How often a Cluster store checks that the node holding its slot answers (see `SlotWatch`). */
const SLOT_PROBE_MS = 1_000;

/**
 * The two connections of a store, for a single node, Sentinel or Cluster: `client` for
 * commands and `sub` for the invalidation channel (a subscribed connection can send nothing
 * else). Neither is connected yet when this returns.
 */
export function connect(options: RedisStoreOptions, warn: Warn): { client: Client; sub: Client } {
  const common: RedisOptions = {
    password: options.password ?? undefined,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: options.connectTimeoutMs,
    // Fail at once while disconnected: a request waits for nothing that may never come.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
  };
  let client: Client;
  if (options.cluster?.length) {
    client = new Cluster(options.cluster, { redisOptions: common, enableOfflineQueue: false, clusterRetryStrategy: common.retryStrategy! });
  } else if (options.sentinels?.length) {
    client = new Redis({ ...common, sentinels: options.sentinels, name: options.name ?? 'mymaster' });
  } else {
    client = new Redis(options.url ?? 'redis://127.0.0.1:6379', common);
  }
  // The subscriber may queue its SUBSCRIBE until it is connected; it sends nothing else.
  const sub = options.cluster?.length
    ? new Cluster(options.cluster, { redisOptions: { ...common, commandTimeout: undefined } })
    : (client as Redis).duplicate({ enableOfflineQueue: true, commandTimeout: undefined });
  client.on('error', (err: Error) => warn('redis error', { err: err.message }));
  sub.on('error', (err: Error) => warn('redis subscriber error', { err: err.message }));
  return { client, sub };
}

/** True once `client` is ready, false if it is not within `timeoutMs`. */
export function waitReady(client: Client, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}

/** `promise`'s value, or `fallback` if it has not settled within `ms`. */
export function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    void promise.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

/**
 * A Cluster client stays 'ready' while any node answers, so while the node that holds this
 * deployment's slot is down it still looked available, though every store command timed
 * out. For Cluster, a read of one of the deployment's keys (`key`, routed by the hash tag to
 * that node) every second decides instead; `start` answers once the first read has.
 */
export class SlotWatch {
  readonly #client: Cluster;
  readonly #key: string;
  #reachable = true;
  #timer: NodeJS.Timeout | undefined;

  constructor(client: Cluster, key: string) {
    this.#client = client;
    this.#key = key;
  }

  start(): Promise<void> {
    const probe = () =>
      this.#client.exists(this.#key).then(
        () => void (this.#reachable = true),
        () => void (this.#reachable = false),
      );
    this.#timer = setInterval(() => void probe(), SLOT_PROBE_MS);
    this.#timer.unref();
    return probe();
  }

  /** Whether the node serving the slot answered the last probe. */
  get reachable(): boolean {
    return this.#reachable;
  }

  close(): void {
    clearInterval(this.#timer);
  }
}

/** What `onSubscriberReady` uses of ioredis's (private) Cluster subscriber. */
interface ClusterSubscriberInternals {
  selectSubscriber(): void;
  getInstance(): Redis | null;
}

/**
 * Calls `fn` on every (re)connection of the connection that carries the SUBSCRIBE; false when
 * that cannot be watched. For a single node or Sentinel that is the subscriber client itself,
 * whose 'ready' follows each reconnect. A Cluster client instead subscribes through a
 * connection of its own to one node, and when that connection drops it quietly opens another
 * (to any node) and subscribes again there; the Cluster itself stays 'ready' and emits nothing,
 * so the flush after a reconnect never happened. Each new subscriber connection is watched
 * instead, through ioredis's Cluster internals (`subscriber.selectSubscriber`, ioredis 6.0.0,
 * pinned in package.json; if they change, this answers false and the store warns at open).
 */
export function onSubscriberReady(sub: Client, fn: () => void): boolean {
  if (!(sub instanceof Cluster)) {
    sub.on('ready', fn);
    return true;
  }
  const inner = (sub as unknown as { subscriber?: Partial<ClusterSubscriberInternals> }).subscriber;
  const select = inner?.selectSubscriber;
  if (!inner || typeof select !== 'function' || typeof inner.getInstance !== 'function') return false;
  // Every selection (the first, once the Cluster is ready, and each after a drop) goes through
  // this method on the instance; the new connection connects lazily, with the SUBSCRIBE.
  inner.selectSubscriber = function (this: ClusterSubscriberInternals) {
    select.call(this);
    this.getInstance()?.once('ready', fn);
  };
  return true;
}
