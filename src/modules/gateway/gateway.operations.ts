/**
 * The fourteen operations of the gateway's admin API (SPEC §8). The names are shared by the client
 * (error messages, logs, metrics) and the simulator (routes, faults, the call log) so a test can say
 * "fail the next setTotal" in the same words the client reports it. Paths are deliberately NOT shared:
 * each side spells them out, so a wrong path cannot hide by being wrong in both places at once.
 */
export const GATEWAY_OPERATIONS = [
  'getTotal',
  'setTotal',
  'addTotal',
  'getUsed',
  'setUsed',
  'addUsed',
  'getStarredProjects',
  'setStarredProjects',
  'getModels',
  'setModels',
  'getStarCheck',
  'setStarCheck',
  'getQuotaCheck',
  'setQuotaCheck',
] as const;

export type GatewayOperation = (typeof GATEWAY_OPERATIONS)[number];

export function isGatewayOperation(value: string): value is GatewayOperation {
  return (GATEWAY_OPERATIONS as readonly string[]).includes(value);
}
