import { createHmac } from 'node:crypto';

/**
 * The `Keygate-Signature` header of a webhook body: `t=<unix seconds>,v1=<hex
 * HMAC-SHA-256(secret, "<t>.<body>")>`, as the rotation and alert webhooks send it
 * (docs/alerts.md, Verifying a signature).
 */
export function webhookSignature(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}
