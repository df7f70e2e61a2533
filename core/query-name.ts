/**
 * A name folded as the frameworks behind the gateway may read it, so that no spelling of the
 * credential parameter carries a second key past the gateway: case ignored in the widest sense
 * (ASP.NET binds names without regard to case, and upper-cases `ı` and `ſ` to `I` and `S`),
 * leading spaces dropped and `.` and spaces read as `_` (PHP), and a bracket suffix cut off
 * (`api_key[]`, `api_key[x]`: PHP and Rack) or an unclosed `[` read as `_` (PHP).
 */
export function foldName(name: string): string {
  let n = name.toUpperCase().toLowerCase();
  let start = 0;
  while (start < n.length && n.charCodeAt(start) === 32) start++;
  if (start > 0) n = n.slice(start);
  const bracket = n.indexOf('[');
  if (bracket > 0) n = n.indexOf(']', bracket) === -1 ? `${n.slice(0, bracket)}_${n.slice(bracket + 1)}` : n.slice(0, bracket);
  return n.includes('.') || n.includes(' ') ? n.replace(/[. ]/g, '_') : n;
}
