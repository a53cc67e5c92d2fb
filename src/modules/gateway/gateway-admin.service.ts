import { badInput, DomainError, ErrorCode } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { amountToCents, centsToAmount } from '../../money.js';
import type { Viewer } from '../auth/token-verifier.js';
import type { GatewayClient } from './gateway.client.js';

export type Counter = 'TOTAL' | 'USED';

const MAX_IDENTIFIER_LENGTH = 200;
const MAX_PROJECTS = 100;
const MAX_PROJECT_LENGTH = 200;

function checkIdentifier(value: string, what: string): string {
  const trimmed = value.trim();
  if (trimmed === '') throw badInput(`${what} must not be empty`);
  if (trimmed.length > MAX_IDENTIFIER_LENGTH)
    throw badInput(`${what} is longer than ${MAX_IDENTIFIER_LENGTH} characters`);
  return trimmed;
}

/** The admin tooling over the gateway client (contract: gatewayQuota … setGatewayStarredProjects). */
export class GatewayAdminService {
  constructor(
    private readonly gateway: GatewayClient,
    private readonly logger: Logger,
  ) {}

  async userQuota(userIdInput: string) {
    const userId = checkIdentifier(userIdInput, 'userId');
    const [total, used] = await Promise.all([this.gateway.getTotal(userId), this.gateway.getUsed(userId)]);
    return { userId, totalQuota: centsToAmount(total), usedQuota: centsToAmount(used) };
  }

  async employeeState(employeeNumberInput: string) {
    const employeeNumber = checkIdentifier(employeeNumberInput, 'employeeNumber');
    const [starredProjects, starCheck, quotaCheck, models] = await Promise.all([
      this.gateway.getStarredProjects(employeeNumber),
      this.gateway.getStarCheck(employeeNumber),
      this.gateway.getQuotaCheck(employeeNumber),
      this.gateway.getModels(employeeNumber),
    ]);
    return { employeeNumber, starredProjects, starCheck, quotaCheck, models };
  }

  async setCounter(actor: Viewer, userIdInput: string, counter: Counter, value: number) {
    const userId = checkIdentifier(userIdInput, 'userId');
    const cents = amountToCents(value, 'value');
    if (cents < 0) throw badInput('value must not be negative');
    if (counter === 'TOTAL') await this.gateway.setTotal(userId, cents);
    else await this.gateway.setUsed(userId, cents);
    this.logger.info({ actor: actor.userId, userId, counter, value }, 'admin set a gateway counter');
    return this.userQuota(userId);
  }

  async adjustCounter(actor: Viewer, userIdInput: string, counter: Counter, delta: number) {
    const userId = checkIdentifier(userIdInput, 'userId');
    const cents = amountToCents(delta, 'delta');
    if (cents === 0) throw badInput('delta must not be 0');
    if (counter === 'TOTAL') await this.gateway.addTotal(userId, cents);
    else await this.gateway.addUsed(userId, cents);
    this.logger.info({ actor: actor.userId, userId, counter, delta }, 'admin adjusted a gateway counter');
    try {
      return await this.userQuota(userId);
    } catch (error) {
      // The delta is applied; a caller who took this failure for the delta's would send it again and
      // apply it twice. The error says so, in words and in `deltaApplied`.
      throw new DomainError(
        ErrorCode.GATEWAY_UNAVAILABLE,
        `The delta of ${delta} to ${counter} was applied, but the counters could not be read back: do not send it again; read them with gatewayQuota.`,
        { deltaApplied: true },
        { cause: error },
      );
    }
  }

  async setStarredProjects(actor: Viewer, employeeNumberInput: string, projects: string[]) {
    const employeeNumber = checkIdentifier(employeeNumberInput, 'employeeNumber');
    if (projects.length > MAX_PROJECTS) throw badInput(`projects may list at most ${MAX_PROJECTS} names`);
    const cleaned = projects.map((project) => project.trim());
    for (const project of cleaned) {
      if (project === '' || project.length > MAX_PROJECT_LENGTH || project.includes(',')) {
        throw badInput(`each project must be 1-${MAX_PROJECT_LENGTH} characters without commas`);
      }
    }
    await this.gateway.setStarredProjects(employeeNumber, cleaned);
    this.logger.info({ actor: actor.userId, employeeNumber, projects: cleaned }, 'admin set starred projects');
    return this.employeeState(employeeNumber);
  }
}
