/**
 * The nouns of the admin-API client (docs/cli.md). Their own module, importing nothing, so the
 * entry points can send a client command on without loading the gateway and the admin plane.
 */
export const CLIENT_NOUNS: ReadonlySet<string> = new Set(['keys', 'usage', 'audit', 'apps', 'hash-password']);

export const isClientCommand = (arg: string | undefined): boolean => arg !== undefined && CLIENT_NOUNS.has(arg);
