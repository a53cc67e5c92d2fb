import { createHmac, timingSafeEqual } from 'node:crypto';
import { formatZoned } from '../../clock.js';
import { DomainError, ErrorCode } from '../../errors.js';
import { amountToCents, type Cents, centsToAmount } from '../../money.js';

/**
 * The voucher wire format of SPEC §5, byte-compatible with the Go system it replaces, so vouchers it
 * issued stay redeemable and ours would be accepted by it:
 *
 *   code = base64url_nopad( JSON + "|" + lowercase_hex( HMAC-SHA256(key, JSON) ) )
 *
 * JSON is what Go's json.Marshal writes for the payload struct: keys in declaration order, no spaces,
 * amounts as plain numbers (30, 12.5), expiry dates as RFC 3339 with the zone's offset, the timestamp
 * in unix seconds. Verification runs over the raw JSON bytes, so the exact serialisation only matters
 * when encoding. Pure: no clock, no database; the caller passes "now".
 */

/** Longest code accepted: anything longer is refused before any decoding work. */
export const MAX_VOUCHER_CODE_LENGTH = 4096;
/** Items per voucher (SPEC §5: 1–20 items per transfer). */
export const MAX_VOUCHER_ITEMS = 20;
/** A voucher stamped this far ahead of our clock is still accepted (clock skew between instances). */
export const VOUCHER_FUTURE_SKEW_SECONDS = 60;

export interface VoucherItem {
  amount: Cents;
  expiryDate: Date;
}

export interface VoucherPayload {
  giverId: string;
  giverName: string;
  giverPhone: string;
  giverGithub: string;
  /** Comma-separated starred projects of the giver (may be empty). */
  giverGithubStar: string;
  receiverId: string;
  items: VoucherItem[];
  /** Unix seconds of issue. */
  timestamp: number;
}

export interface VoucherKeys {
  /** Signs new vouchers and verifies. */
  signingKey: string;
  /** Verify only: keys being rotated out. */
  previousKeys?: readonly string[];
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const SIGNATURE_HEX = /^[0-9a-f]{64}$/;
/** RFC 3339 as Go writes and reads it: seconds required, optional fraction, Z or ±hh:mm. */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|([+-])(\d{2}):(\d{2}))$/;
const SEPARATOR = 0x7c; // '|'
const PAYLOAD_KEYS = [
  'giver_id',
  'giver_name',
  'giver_phone',
  'giver_github',
  'giver_github_star',
  'receiver_id',
  'quota_list',
  'timestamp',
] as const;

export function voucherInvalid(reason: string): DomainError {
  return new DomainError(ErrorCode.VOUCHER_INVALID, `The voucher code is not valid: ${reason}.`);
}

export class VoucherCodec {
  private readonly signingKey: Buffer;
  private readonly verifyKeys: Buffer[];

  constructor(
    keys: VoucherKeys,
    /** The zone expiry dates are written in (the configured TZ_NAME). */
    private readonly timeZone: string,
  ) {
    this.signingKey = Buffer.from(keys.signingKey, 'utf8');
    this.verifyKeys = [this.signingKey, ...(keys.previousKeys ?? []).map((key) => Buffer.from(key, 'utf8'))];
  }

  /** The payload's JSON exactly as the old system's json.Marshal wrote it. */
  serialize(payload: VoucherPayload): string {
    const parts = [
      `"giver_id":${goString(payload.giverId)}`,
      `"giver_name":${goString(payload.giverName)}`,
      `"giver_phone":${goString(payload.giverPhone)}`,
      `"giver_github":${goString(payload.giverGithub)}`,
      `"giver_github_star":${goString(payload.giverGithubStar)}`,
      `"receiver_id":${goString(payload.receiverId)}`,
      `"quota_list":[${payload.items.map((item) => this.serializeItem(item)).join(',')}]`,
      `"timestamp":${goInteger(payload.timestamp)}`,
    ];
    return `{${parts.join(',')}}`;
  }

  encode(payload: VoucherPayload): string {
    const json = Buffer.from(this.serialize(payload), 'utf8');
    const signature = hmacHex(this.signingKey, json);
    return Buffer.concat([json, Buffer.from(`|${signature}`, 'ascii')]).toString('base64url');
  }

  /**
   * Verifies and reads a code. Anything wrong — length, alphabet, a non-canonical encoding, a missing
   * or forged signature, a payload of the wrong shape, a timestamp in the future — is VOUCHER_INVALID.
   */
  decode(code: string, now: Date): VoucherPayload {
    const raw = this.verify(code);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
    } catch {
      throw voucherInvalid('the payload is not JSON');
    }
    const payload = readPayload(parsed);
    if (payload.timestamp > Math.floor(now.getTime() / 1000) + VOUCHER_FUTURE_SKEW_SECONDS) {
      throw voucherInvalid('it is dated in the future');
    }
    return payload;
  }

  /** The signed JSON bytes of a code, after checking the signature against every accepted key. */
  private verify(code: string): Buffer {
    if (typeof code !== 'string' || code.length === 0) throw voucherInvalid('it is empty');
    if (code.length > MAX_VOUCHER_CODE_LENGTH) {
      throw voucherInvalid(`it is longer than ${MAX_VOUCHER_CODE_LENGTH} characters`);
    }
    if (!BASE64URL.test(code)) throw voucherInvalid('it is not unpadded base64url');
    const bytes = Buffer.from(code, 'base64url');
    // Node decodes leniently (ignores stray bits); only the canonical spelling of the bytes is a
    // voucher, so no second code can stand for the same voucher and every changed character fails.
    if (bytes.toString('base64url') !== code) throw voucherInvalid('it is not canonical base64url');
    const separator = bytes.lastIndexOf(SEPARATOR);
    if (separator < 0) throw voucherInvalid('it has no signature');
    const json = bytes.subarray(0, separator);
    const signature = bytes.subarray(separator + 1);
    if (!SIGNATURE_HEX.test(signature.toString('latin1'))) throw voucherInvalid('the signature is malformed');
    let matched = false;
    for (const key of this.verifyKeys) {
      // Every key is tried (no early exit), so timing says nothing about which one matched.
      if (timingSafeEqual(Buffer.from(hmacHex(key, json), 'ascii'), signature)) matched = true;
    }
    if (!matched) throw voucherInvalid('the signature does not match');
    return json;
  }

  private serializeItem(item: VoucherItem): string {
    return `{"amount":${goAmount(item.amount)},"expiry_date":${goString(goTime(item.expiryDate, this.timeZone))}}`;
  }
}

function hmacHex(key: Buffer, data: Buffer): string {
  return createHmac('sha256', key).update(data).digest('hex');
}

/**
 * A JSON string as Go's encoder writes it: JSON.stringify plus Go's HTML-safe escapes of <, > and &
 * and of the JavaScript line terminators U+2028 / U+2029.
 */
function goString(value: string): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (char) => {
    return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

function goInteger(value: number): string {
  if (!Number.isSafeInteger(value)) throw new Error(`voucher timestamp must be a whole number: ${value}`);
  return String(value);
}

/** float64 as Go writes it: the shortest round-trip decimal, like JavaScript below 1e21. */
function goAmount(cents: Cents): string {
  if (!Number.isSafeInteger(cents) || cents <= 0) throw new Error(`voucher amount must be positive cents: ${cents}`);
  return String(centsToAmount(cents));
}

/** time.Time as Go's MarshalJSON writes it (RFC 3339, "Z" for a zero offset), to the second. */
function goTime(instant: Date, timeZone: string): string {
  return formatZoned(new Date(Math.floor(instant.getTime() / 1000) * 1000), timeZone).replace(/\+00:00$/, 'Z');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The payload's shape, checked strictly: every field present with its type. */
function readPayload(parsed: unknown): VoucherPayload {
  if (!isObject(parsed)) throw voucherInvalid('the payload is not an object');
  for (const key of PAYLOAD_KEYS) {
    if (!(key in parsed)) throw voucherInvalid(`the payload has no ${key}`);
  }
  const text = (key: (typeof PAYLOAD_KEYS)[number]): string => {
    const value = parsed[key];
    if (typeof value !== 'string') throw voucherInvalid(`${key} is not a string`);
    return value;
  };
  const giverId = text('giver_id');
  const receiverId = text('receiver_id');
  if (giverId.trim() === '') throw voucherInvalid('giver_id is empty');
  if (receiverId.trim() === '') throw voucherInvalid('receiver_id is empty');

  const list = parsed.quota_list;
  if (!Array.isArray(list)) throw voucherInvalid('quota_list is not a list');
  if (list.length === 0 || list.length > MAX_VOUCHER_ITEMS) {
    throw voucherInvalid(`quota_list must hold 1 to ${MAX_VOUCHER_ITEMS} items`);
  }
  const items = list.map((item, index) => readItem(item, index));

  const timestamp = parsed.timestamp;
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw voucherInvalid('timestamp is not a unix time in seconds');
  }
  return {
    giverId,
    giverName: text('giver_name'),
    giverPhone: text('giver_phone'),
    giverGithub: text('giver_github'),
    giverGithubStar: text('giver_github_star'),
    receiverId,
    items,
    timestamp,
  };
}

function readItem(item: unknown, index: number): VoucherItem {
  if (!isObject(item)) throw voucherInvalid(`quota_list[${index}] is not an object`);
  const { amount, expiry_date: expiry } = item;
  if (typeof amount !== 'number' || !Number.isFinite(amount) || amount <= 0) {
    throw voucherInvalid(`quota_list[${index}].amount is not a positive number`);
  }
  // The API's rule for amounts (money.ts: at most 2 decimals as written, within numeric(14,2)); a
  // signed voucher is still refused rather than rounded when it breaks it.
  let cents: number;
  try {
    cents = amountToCents(amount);
  } catch {
    throw voucherInvalid(`quota_list[${index}].amount must be a positive amount with at most 2 decimals`);
  }
  if (typeof expiry !== 'string') throw voucherInvalid(`quota_list[${index}].expiry_date is not a string`);
  const expiryDate = parseRfc3339(expiry);
  if (!expiryDate) throw voucherInvalid(`quota_list[${index}].expiry_date is not an RFC 3339 time`);
  return { amount: cents, expiryDate };
}

/** Strict RFC 3339: the calendar fields must exist (no 30 February), the offset within ±23:59. */
export function parseRfc3339(text: string): Date | null {
  const match = RFC3339.exec(text);
  if (!match) return null;
  const [, y, mo, d, h, mi, s, fraction, zone, sign, oh, om] = match;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (year < 1000 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  if (new Date(wall).getUTCDate() !== day) return null;
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const hours = Number(oh);
    const minutes = Number(om);
    if (hours > 23 || minutes > 59) return null;
    offsetMinutes = (sign === '-' ? -1 : 1) * (hours * 60 + minutes);
  }
  const millis = fraction ? Math.floor(Number(`0${fraction}`) * 1000) : 0;
  const instant = new Date(wall - offsetMinutes * 60_000 + millis);
  return Number.isNaN(instant.getTime()) ? null : instant;
}
