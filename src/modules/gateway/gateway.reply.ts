import { type Cents, decimalToCents } from '../../money.js';

/**
 * Reading the gateway's replies: the `{code, message, success, data}` envelope and the few `data`
 * shapes of SPEC §8. Readers are lenient where the gateway's own types are loose (a quota as a number
 * or a decimal string, a switch as a boolean or "true"/"false", models as an array or its JSON text)
 * and strict about everything else: a reply we cannot read is an error, never a silent 0.
 */

export interface GatewayReply {
  success: boolean;
  code: unknown;
  message: string;
  data: unknown;
}

/** Thrown by the readers when `data` has an unexpected shape; the client turns it into a failure. */
export class ReplyShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplyShapeError';
  }
}

/** The envelope, or undefined when the body is not JSON or not an envelope at all. */
export function parseReply(body: string): GatewayReply | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed) || !('success' in parsed)) return undefined;
  return {
    success: parsed.success === true,
    code: parsed.code,
    message: typeof parsed.message === 'string' ? parsed.message : '',
    data: parsed.data,
  };
}

export function readQuota(data: unknown): Cents {
  const quota = field(data, 'quota');
  if (quota === null || quota === undefined) throw new ReplyShapeError('reply has no data.quota');
  if (typeof quota !== 'number' && typeof quota !== 'string') throw new ReplyShapeError('data.quota is not a number');
  try {
    return decimalToCents(quota);
  } catch {
    throw new ReplyShapeError('data.quota is not a decimal number');
  }
}

export function readStarredProjects(data: unknown): string[] {
  const projects = field(data, 'starred_projects');
  if (projects === null || projects === undefined) return [];
  if (typeof projects !== 'string') throw new ReplyShapeError('data.starred_projects is not a string');
  return splitCsv(projects);
}

export function readModels(data: unknown): string[] {
  let models = field(data, 'models');
  if (models === null || models === undefined || models === '') return [];
  if (typeof models === 'string') {
    try {
      models = JSON.parse(models);
    } catch {
      throw new ReplyShapeError('data.models is not a JSON array');
    }
  }
  if (!Array.isArray(models) || !models.every((model) => typeof model === 'string')) {
    throw new ReplyShapeError('data.models is not an array of names');
  }
  return models;
}

/** A switch nobody set reads as off, which is also the gateway's default. */
export function readEnabled(data: unknown): boolean {
  const enabled = field(data, 'enabled');
  if (enabled === null || enabled === undefined) return false;
  if (typeof enabled === 'boolean') return enabled;
  if (typeof enabled === 'string') {
    const lower = enabled.trim().toLowerCase();
    if (lower === 'true') return true;
    if (lower === 'false') return false;
  }
  throw new ReplyShapeError('data.enabled is not a boolean');
}

export function splitCsv(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function field(data: unknown, name: string): unknown {
  if (data === null || data === undefined) return undefined;
  if (!isRecord(data)) throw new ReplyShapeError('reply data is not an object');
  return data[name];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
