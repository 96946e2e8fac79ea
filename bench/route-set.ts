/**
 * A large, realistic route table for the route-scale cases (group 12): 500
 * services of 20 routes each, 10,000 routes in all, the way a team's file
 * grows — every service under its own `/svcNNNN/` prefix, and per service:
 *
 * | routes | what |
 * |---:|---|
 * | 11 | prefix paths only (`/svc0042/users`) |
 * | 3 | prefix path + methods (`GET`/`POST`, `GET`/`HEAD`, `DELETE`) |
 * | 2 | plain host + prefix path (`t42.example.com` + `/users`) |
 * | 1 | wildcard host + prefix path (`*.t42.example.net` + `/users`) |
 * | 1 | host + method + path (`api42.example.org`, `GET`, `/v1`) |
 * | 2 | regex paths with `regex_priority` 0–4 (`~/svc0042/items/\d+$`; one with methods) — 10 % regex |
 *
 * One service in 50 has a regex with no literal prefix instead
 * (`~/(?:legacy|old)/svc0050/…`), which any matcher must try on every path of
 * its group; one in ten has `cors` on a method route, one in 25
 * `rate-limiting` (local). Deterministic: the same table every run.
 */

export const ROUTE_SET_SERVICES = 500;
export const ROUTES_PER_SERVICE = 20;

const RESOURCES = ['users', 'orders', 'items', 'accounts', 'invoices', 'carts', 'products', 'reviews', 'search', 'health', 'media', 'tags', 'teams', 'events', 'reports', 'sessions', 'files', 'jobs', 'plans', 'quotes'];

export const svc = (i: number) => `svc${String(i).padStart(4, '0')}`;

/** The request of case 13-routes-10k: a plain prefix route of a service in the middle of the file, no host, no method. */
export const ROUTE_SET_PLAIN_PATH = `/${svc(250)}/${RESOURCES[5]}/42/lines`;

/** The declarative document (`_format_version` 3.0) of the 10,000 routes, all to `upstreamUrl`. */
export function routeSet(upstreamUrl: string, services = ROUTE_SET_SERVICES): object {
  return {
    _format_version: '3.0',
    services: Array.from({ length: services }, (_, i) => ({ name: svc(i), url: upstreamUrl, routes: serviceRoutes(i) })),
  };
}

function serviceRoutes(i: number): object[] {
  const s = svc(i);
  const routes: object[] = [];
  const route = (j: number, fields: Record<string, unknown>) => routes.push({ name: `${s}-${RESOURCES[j]}`, strip_path: false, ...fields });
  for (let j = 0; j < 11; j++) route(j, { paths: [`/${s}/${RESOURCES[j]}`] });
  route(11, { paths: [`/${s}/${RESOURCES[11]}`], methods: ['GET', 'POST'], plugins: i % 10 === 0 ? [{ name: 'cors', config: { origins: ['https://app.example.com'] } }] : [] });
  route(12, { paths: [`/${s}/${RESOURCES[12]}`], methods: ['GET', 'HEAD'], plugins: i % 25 === 0 ? [{ name: 'rate-limiting', config: { minute: 1000, policy: 'local' } }] : [] });
  route(13, { paths: [`/${s}/${RESOURCES[13]}`], methods: ['DELETE'] });
  route(14, { hosts: [`t${i}.example.com`], paths: [`/${RESOURCES[14]}`] });
  route(15, { hosts: [`t${i}.example.com`], paths: [`/${RESOURCES[15]}`] });
  route(16, { hosts: [`*.t${i}.example.net`], paths: [`/${RESOURCES[16]}`] });
  route(17, { hosts: [`api${i}.example.org`], methods: ['GET'], paths: ['/v1'] });
  route(18, { paths: [`~/${s}/${RESOURCES[18]}/\\d+$`], regex_priority: i % 5 });
  route(
    19,
    i % 50 === 0
      ? { paths: [`~/(?:legacy|old)/${s}/${RESOURCES[19]}`], regex_priority: 1 }
      : { paths: [`~/${s}/${RESOURCES[19]}/[0-9a-f]{8}(/|$)`], methods: ['GET'], regex_priority: i % 3 },
  );
  return routes;
}
