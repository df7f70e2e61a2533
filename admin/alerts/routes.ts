import { z } from 'zod';
import { ALERT_TYPES } from '../../core/alerts.js';
import { HttpError } from '../../core/errors.js';
import type { Store } from '../../core/store/store.js';
import { route, sendJson, type Call, type Route } from '../http.js';
import { cursor, fromBeforeTo, pageLimit, rfc3339 } from '../key-input.js';
import { alertToWire, deliveryToWire } from './deliver.js';

const alertsQuery = z
  .strictObject({
    type: z.enum(ALERT_TYPES).optional().meta({ description: 'Alerts of this type only.' }),
    key_id: z.string().max(64).optional().meta({ description: 'Alerts about this key only.' }),
    from: rfc3339.optional().meta({ description: 'Alerts raised at or after this time.' }),
    to: rfc3339.optional().meta({ description: 'Alerts raised before this time.' }),
    limit: pageLimit(50),
    cursor,
  })
  .superRefine(fromBeforeTo);

/** GET /v1/alerts and an alert's deliveries; a tenant's token sees its tenant's alerts only. */
export function alertRoutes(d: { store: Store }): Route<Call>[] {
  const { store } = d;

  /** The alert, or 404 when there is none or it is another tenant's (its existence is not revealed). */
  async function visible(id: string, c: Call) {
    const alert = await store.getAlert(id);
    if (alert === null || (c.actor.tenant !== null && alert.tenant !== c.actor.tenant)) throw new HttpError('not_found', `No alert ${id}.`);
    return alert;
  }

  return [
    route('GET', '/v1/alerts', 'read', {
      operationId: 'listAlerts',
      tag: 'Alerts',
      summary: 'List alerts',
      description:
        'Alerts raised about keys and traffic (docs/alerts.md), newest first, a page at a time. ' +
        'A tenant’s token sees its tenant’s alerts only; alerts about all traffic (`usage.error_rate`) only tokens of no tenant see.',
      query: alertsQuery,
      responses: { 200: { description: 'A page of alerts.', schema: 'AlertList' } },
    }, async (c) => {
      const q = c.parse(alertsQuery, Object.fromEntries(c.url.searchParams));
      const page = await store.listAlerts({ tenant: c.actor.tenant, type: q.type, key_id: q.key_id, from: q.from, to: q.to, limit: q.limit, cursor: q.cursor });
      sendJson(c.res, 200, { data: page.data.map(alertToWire), next_cursor: page.next_cursor }, c.requestId);
    }),
    route('GET', '/v1/alerts/{id}', 'read', {
      operationId: 'getAlert',
      tag: 'Alerts',
      summary: 'Get an alert',
      description: 'One alert, as its webhooks receive it.',
      responses: { 200: { description: 'The alert.', schema: 'Alert' } },
    }, async (c, [id]) => sendJson(c.res, 200, alertToWire(await visible(id!, c)), c.requestId)),
    route('GET', '/v1/alerts/{id}/deliveries', 'read', {
      operationId: 'listAlertDeliveries',
      tag: 'Alerts',
      summary: 'List an alert’s deliveries',
      description: 'Where the alert was sent (each webhook, email) and every attempt: when, the answer, and when the next is due.',
      responses: { 200: { description: 'The deliveries, oldest first.', schema: 'DeliveryList' } },
    }, async (c, [id]) => {
      const alert = await visible(id!, c);
      sendJson(c.res, 200, { data: (await store.listDeliveries(alert.id)).map(deliveryToWire) }, c.requestId);
    }),
  ];
}
