import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DomainError, ErrorCode } from '../../src/errors.js';
import {
  MAX_VOUCHER_CODE_LENGTH,
  parseRfc3339,
  VoucherCodec,
  type VoucherPayload,
} from '../../src/modules/vouchers/voucher-codec.js';

// TEST-VECTORS.md, voucher.
const KEY = 'test-voucher-signing-key-32-bytes-long!!';
const VECTOR_JSON =
  '{"giver_id":"3f1c6a52-9d0e-4c55-8f0b-1a2b3c4d5e6f","giver_name":"","giver_phone":"","giver_github":"","giver_github_star":"zgsm-ai.zgsm","receiver_id":"7a9e2b10-4c3d-4e8f-9a1b-2c3d4e5f6a7b","quota_list":[{"amount":30,"expiry_date":"2026-12-31T23:59:59+08:00"}],"timestamp":1795000000}';
const VECTOR_HMAC = '3eb0c686713a83c7bbb989e088469ccc52499fbe874369aa5bad1dad8bc52ec0';
const VECTOR_CODE =
  'eyJnaXZlcl9pZCI6IjNmMWM2YTUyLTlkMGUtNGM1NS04ZjBiLTFhMmIzYzRkNWU2ZiIsImdpdmVyX25hbWUiOiIiLCJnaXZlcl9waG9uZSI6IiIsImdpdmVyX2dpdGh1YiI6IiIsImdpdmVyX2dpdGh1Yl9zdGFyIjoiemdzbS1haS56Z3NtIiwicmVjZWl2ZXJfaWQiOiI3YTllMmIxMC00YzNkLTRlOGYtOWExYi0yYzNkNGU1ZjZhN2IiLCJxdW90YV9saXN0IjpbeyJhbW91bnQiOjMwLCJleHBpcnlfZGF0ZSI6IjIwMjYtMTItMzFUMjM6NTk6NTkrMDg6MDAifV0sInRpbWVzdGFtcCI6MTc5NTAwMDAwMH18M2ViMGM2ODY3MTNhODNjN2JiYjk4OWUwODg0NjljY2M1MjQ5OWZiZTg3NDM2OWFhNWJhZDFkYWQ4YmM1MmVjMA';
const VECTOR_PAYLOAD: VoucherPayload = {
  giverId: '3f1c6a52-9d0e-4c55-8f0b-1a2b3c4d5e6f',
  giverName: '',
  giverPhone: '',
  giverGithub: '',
  giverGithubStar: 'zgsm-ai.zgsm',
  receiverId: '7a9e2b10-4c3d-4e8f-9a1b-2c3d4e5f6a7b',
  items: [{ amount: 3000, expiryDate: new Date('2026-12-31T15:59:59Z') }],
  timestamp: 1795000000,
};
/** Shortly after the vector was issued. */
const NOW = new Date(1795000100 * 1000);
const ZONE = 'Asia/Shanghai';

const codec = new VoucherCodec({ signingKey: KEY }, ZONE);

/** Signs arbitrary JSON the way the old system did (to build codes by hand). */
function sign(json: string, key = KEY): string {
  const hex = createHmac('sha256', key).update(json, 'utf8').digest('hex');
  return Buffer.from(`${json}|${hex}`, 'utf8').toString('base64url');
}

/** A giver_name that makes the vector's code exactly `bytes` long before base64url (JSON + "|" + 64 hex). */
function paddedGiverName(bytes: number): string {
  const unpadded = Buffer.byteLength(codec.serialize({ ...VECTOR_PAYLOAD, giverName: '' }), 'utf8') + 65;
  return 'x'.repeat(bytes - unpadded);
}

function invalidReason(code: string, at: Date = NOW, using: VoucherCodec = codec): string {
  try {
    using.decode(code, at);
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe(ErrorCode.VOUCHER_INVALID);
    return (error as DomainError).message;
  }
  throw new Error('expected VOUCHER_INVALID, but the code decoded');
}

describe('voucher codec: the test vector', () => {
  it('serialises the payload to the exact JSON bytes', () => {
    expect(codec.serialize(VECTOR_PAYLOAD)).toBe(VECTOR_JSON);
  });

  it('signs with the exact HMAC and encodes to the exact code', () => {
    expect(createHmac('sha256', KEY).update(VECTOR_JSON).digest('hex')).toBe(VECTOR_HMAC);
    expect(codec.encode(VECTOR_PAYLOAD)).toBe(VECTOR_CODE);
  });

  it('decodes the code to the payload', () => {
    expect(codec.decode(VECTOR_CODE, NOW)).toEqual(VECTOR_PAYLOAD);
  });

  it('refuses every single-character change of the code', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // Every position, one substitution each (the next letter of the alphabet), and every
    // substitution of the last character, whose low bits are padding in a lenient decoder.
    for (let index = 0; index < VECTOR_CODE.length; index++) {
      const current = VECTOR_CODE[index]!;
      const replacement = alphabet[(alphabet.indexOf(current) + 1) % alphabet.length]!;
      invalidReason(VECTOR_CODE.slice(0, index) + replacement + VECTOR_CODE.slice(index + 1));
    }
    for (const replacement of alphabet) {
      if (replacement === VECTOR_CODE.at(-1)) continue;
      invalidReason(VECTOR_CODE.slice(0, -1) + replacement);
    }
  });
});

describe('voucher codec: round trips', () => {
  const payload: VoucherPayload = {
    giverId: 'giver-1',
    giverName: 'Zhang <San> & "Li"',
    giverPhone: '+86 138',
    giverGithub: 'zs',
    giverGithubStar: 'zgsm-ai.zgsm,openai.gpt-4',
    receiverId: 'receiver-1',
    items: [
      { amount: 1250, expiryDate: new Date('2026-01-31T15:59:59Z') },
      { amount: 1, expiryDate: new Date('2026-02-28T15:59:59Z') },
      { amount: 99_999_999_999_999, expiryDate: new Date('2027-01-31T15:59:59Z') },
    ],
    timestamp: 1_790_000_000,
  };

  it('decodes what it encodes', () => {
    expect(codec.decode(codec.encode(payload), NOW)).toEqual(payload);
  });

  it('carries 1 to 20 items: 20 decode, 21 are refused (SPEC §5)', () => {
    const items = (count: number) =>
      Array.from({ length: count }, (_, index) => ({
        amount: index + 1,
        expiryDate: new Date(Date.UTC(2027, 0, index + 1, 15, 59, 59)),
      }));
    expect(codec.decode(codec.encode({ ...payload, items: items(20) }), NOW).items).toEqual(items(20));
    expect(invalidReason(codec.encode({ ...payload, items: items(21) }))).toMatch(/1 to 20 items/);
  });

  it('writes amounts as Go numbers and escapes like Go', () => {
    const json = codec.serialize(payload);
    expect(json).toContain('"amount":12.5,');
    expect(json).toContain('"amount":0.01,');
    expect(json).toContain('"amount":999999999999.99,');
    expect(json).toContain('"giver_name":"Zhang \\u003cSan\\u003e \\u0026 \\"Li\\""');
    expect(json).toContain('"expiry_date":"2026-01-31T23:59:59+08:00"');
  });

  it('writes a zero offset as Z, as Go does', () => {
    const utc = new VoucherCodec({ signingKey: KEY }, 'UTC');
    expect(utc.serialize(payload)).toContain('"expiry_date":"2026-01-31T15:59:59Z"');
    expect(utc.decode(utc.encode(payload), NOW)).toEqual(payload);
  });

  it('keeps a "|" inside a JSON string (splits at the last one)', () => {
    const piped = { ...payload, giverName: 'a|b', giverGithub: '||' };
    const decoded = codec.decode(codec.encode(piped), NOW);
    expect(decoded.giverName).toBe('a|b');
    expect(decoded.giverGithub).toBe('||');
  });

  it('keeps non-ASCII text byte for byte', () => {
    const chinese = { ...payload, giverName: '张三 🚀' };
    expect(codec.decode(codec.encode(chinese), NOW).giverName).toBe('张三 🚀');
  });
});

describe('voucher codec: keys', () => {
  const other = 'another-signing-key-that-is-32-bytes-long';

  it('refuses a code signed with another key', () => {
    const foreign = new VoucherCodec({ signingKey: other }, ZONE);
    expect(invalidReason(foreign.encode(VECTOR_PAYLOAD))).toMatch(/signature does not match/);
  });

  it('accepts a code signed with a previous key, and signs with the current one', () => {
    const rotated = new VoucherCodec(
      { signingKey: other, previousKeys: ['unused-key-unused-key-unused-key-000', KEY] },
      ZONE,
    );
    expect(rotated.decode(VECTOR_CODE, NOW)).toEqual(VECTOR_PAYLOAD);
    const fresh = rotated.encode(VECTOR_PAYLOAD);
    expect(fresh).not.toBe(VECTOR_CODE);
    // The old key alone no longer verifies what the new key signed.
    expect(invalidReason(fresh)).toMatch(/signature/);
  });
});

describe('voucher codec: refusals', () => {
  const json = VECTOR_JSON;

  it('tampered payload (signature kept)', () => {
    const tampered = json.replace('"amount":30', '"amount":3000');
    expect(invalidReason(Buffer.from(`${tampered}|${VECTOR_HMAC}`).toString('base64url'))).toMatch(/signature/);
  });

  it('tampered signature', () => {
    const hex = `${VECTOR_HMAC.slice(0, -1)}1`;
    expect(invalidReason(Buffer.from(`${json}|${hex}`).toString('base64url'))).toMatch(/signature does not match/);
  });

  it('upper-case hex signature', () => {
    expect(invalidReason(Buffer.from(`${json}|${VECTOR_HMAC.toUpperCase()}`).toString('base64url'))).toMatch(
      /malformed/,
    );
  });

  it('no signature at all', () => {
    expect(invalidReason(Buffer.from(json).toString('base64url'))).toMatch(/no signature/);
  });

  it('truncated', () => {
    invalidReason(VECTOR_CODE.slice(0, -1));
    invalidReason(VECTOR_CODE.slice(0, -4));
    invalidReason(VECTOR_CODE.slice(0, 100));
    invalidReason(VECTOR_CODE.slice(4));
  });

  it('padded with "="', () => {
    expect(invalidReason(`${VECTOR_CODE}=`)).toMatch(/base64url/);
    expect(invalidReason(`${VECTOR_CODE}==`)).toMatch(/base64url/);
  });

  it('standard base64 characters or other text', () => {
    // A payload whose encoding has "-" and "_", spelled with the standard alphabet's "+" and "/".
    const urlSafe = sign(json.replace('"giver_name":""', '"giver_name":"???>>>~~~"'));
    expect(codec.decode(urlSafe, NOW).giverName).toBe('???>>>~~~');
    const standard = urlSafe.replace(/-/g, '+').replace(/_/g, '/');
    expect(standard).toMatch(/[+/]/);
    expect(invalidReason(standard)).toMatch(/base64url/);
    invalidReason('not a voucher!');
    invalidReason(` ${VECTOR_CODE}`);
    invalidReason(`${VECTOR_CODE}\n`);
  });

  it('empty', () => {
    expect(invalidReason('')).toMatch(/empty/);
  });

  it('100 KB of input, and one character over the limit', () => {
    expect(invalidReason('A'.repeat(100_000))).toMatch(/longer than 4096/);
    expect(invalidReason(`${VECTOR_CODE}${'A'.repeat(MAX_VOUCHER_CODE_LENGTH)}`.slice(0, 4097))).toMatch(/longer/);
  });

  it('a signed code of exactly 4096 characters decodes; the same voucher one byte longer does not', () => {
    // 4096 characters of unpadded base64url are 3072 bytes; 4097 is no such length, so one byte more
    // (3073 bytes) is the shortest signed code over the limit: 4098 characters.
    const longest = { ...VECTOR_PAYLOAD, giverName: paddedGiverName(3072) };
    const code = codec.encode(longest);
    expect(code).toHaveLength(MAX_VOUCHER_CODE_LENGTH);
    expect(codec.decode(code, NOW)).toEqual(longest);
    const over = codec.encode({ ...longest, giverName: `${longest.giverName}x` });
    expect(over).toHaveLength(MAX_VOUCHER_CODE_LENGTH + 2);
    expect(invalidReason(over)).toMatch(/longer than 4096/);
  });

  it('a timestamp in the future (beyond 60 s of skew)', () => {
    const issuedAt = new Date(VECTOR_PAYLOAD.timestamp * 1000);
    expect(invalidReason(VECTOR_CODE, new Date(issuedAt.getTime() - 61_000))).toMatch(/future/);
    expect(codec.decode(VECTOR_CODE, new Date(issuedAt.getTime() - 60_000))).toEqual(VECTOR_PAYLOAD);
  });

  it('signed payloads of the wrong shape', () => {
    const base = JSON.parse(json) as Record<string, unknown>;
    const variants: [string, Record<string, unknown> | unknown][] = [
      ['an array', [base]],
      ['a string', 'voucher'],
      ['missing receiver', { ...base, receiver_id: undefined }],
      ['empty receiver', { ...base, receiver_id: '' }],
      ['blank receiver', { ...base, receiver_id: '   ' }],
      ['numeric receiver', { ...base, receiver_id: 7 }],
      ['empty giver', { ...base, giver_id: '' }],
      ['null giver name', { ...base, giver_name: null }],
      ['missing star', { ...base, giver_github_star: undefined }],
      ['no items', { ...base, quota_list: [] }],
      ['21 items', { ...base, quota_list: Array.from({ length: 21 }, () => (base.quota_list as unknown[])[0]) }],
      ['items not a list', { ...base, quota_list: { amount: 30 } }],
      ['item not an object', { ...base, quota_list: [30] }],
      ['zero amount', { ...base, quota_list: [{ amount: 0, expiry_date: '2026-12-31T23:59:59+08:00' }] }],
      ['negative amount', { ...base, quota_list: [{ amount: -5, expiry_date: '2026-12-31T23:59:59+08:00' }] }],
      ['3 decimals', { ...base, quota_list: [{ amount: 1.005, expiry_date: '2026-12-31T23:59:59+08:00' }] }],
      [
        '12 digits and a 3rd decimal (no tolerance that scales with the amount)',
        { ...base, quota_list: [{ amount: 123456789012.345, expiry_date: '2026-12-31T23:59:59+08:00' }] },
      ],
      [
        'more than numeric(14,2) holds (the first amount it cannot)',
        { ...base, quota_list: [{ amount: 1e12, expiry_date: '2026-12-31T23:59:59+08:00' }] },
      ],
      ['string amount', { ...base, quota_list: [{ amount: '30', expiry_date: '2026-12-31T23:59:59+08:00' }] }],
      ['huge amount', { ...base, quota_list: [{ amount: 1e15, expiry_date: '2026-12-31T23:59:59+08:00' }] }],
      ['no expiry', { ...base, quota_list: [{ amount: 30 }] }],
      ['date only', { ...base, quota_list: [{ amount: 30, expiry_date: '2026-12-31' }] }],
      ['30 February', { ...base, quota_list: [{ amount: 30, expiry_date: '2026-02-30T23:59:59+08:00' }] }],
      ['hour 24', { ...base, quota_list: [{ amount: 30, expiry_date: '2026-12-31T24:00:00+08:00' }] }],
      ['no offset', { ...base, quota_list: [{ amount: 30, expiry_date: '2026-12-31T23:59:59' }] }],
      ['numeric expiry', { ...base, quota_list: [{ amount: 30, expiry_date: 1798732799 }] }],
      ['fractional timestamp', { ...base, timestamp: 1795000000.5 }],
      ['string timestamp', { ...base, timestamp: '1795000000' }],
      ['negative timestamp', { ...base, timestamp: -1 }],
    ];
    for (const [name, variant] of variants) {
      const reason = invalidReason(sign(JSON.stringify(variant)));
      expect(reason, name).toMatch(/not valid/);
    }
    expect(invalidReason(sign('{"giver_id":'))).toMatch(/not JSON/);
    expect(
      invalidReason(
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`|${'0'.repeat(64)}`)]).toString('base64url'),
      ),
    ).toMatch(/signature/);
  });
});

describe('voucher codec: codes of the old system', () => {
  it('accepts a code built by hand in the old format (fraction seconds, Z, two items, extra white space-free JSON)', () => {
    const json =
      '{"giver_id":"u-1","giver_name":"Wang","giver_phone":"13800000000","giver_github":"wang","giver_github_star":"","receiver_id":"u-2","quota_list":[{"amount":12.5,"expiry_date":"2026-03-31T23:59:59+08:00"},{"amount":0.01,"expiry_date":"2026-04-30T15:59:59.5Z"}],"timestamp":1767225600}';
    const decoded = codec.decode(sign(json), NOW);
    expect(decoded).toEqual({
      giverId: 'u-1',
      giverName: 'Wang',
      giverPhone: '13800000000',
      giverGithub: 'wang',
      giverGithubStar: '',
      receiverId: 'u-2',
      items: [
        { amount: 1250, expiryDate: new Date('2026-03-31T15:59:59Z') },
        { amount: 1, expiryDate: new Date('2026-04-30T15:59:59.500Z') },
      ],
      timestamp: 1767225600,
    });
  });

  it('accepts Go-escaped text (\\u003c, \\u0026) inside the signed bytes', () => {
    const json = VECTOR_JSON.replace('"giver_name":""', '"giver_name":"A\\u003cB\\u0026C"');
    expect(codec.decode(sign(json), NOW).giverName).toBe('A<B&C');
  });
});

describe('parseRfc3339', () => {
  it('reads offsets and refuses impossible dates', () => {
    expect(parseRfc3339('2026-12-31T23:59:59+08:00')?.toISOString()).toBe('2026-12-31T15:59:59.000Z');
    expect(parseRfc3339('2026-12-31T23:59:59-05:30')?.toISOString()).toBe('2027-01-01T05:29:59.000Z');
    expect(parseRfc3339('2024-02-29T00:00:00Z')?.toISOString()).toBe('2024-02-29T00:00:00.000Z');
    expect(parseRfc3339('2025-02-29T00:00:00Z')).toBeNull();
    expect(parseRfc3339('2025-13-01T00:00:00Z')).toBeNull();
    expect(parseRfc3339('2025-01-01T00:60:00Z')).toBeNull();
    expect(parseRfc3339('2025-01-01T00:00:00+24:00')).toBeNull();
    expect(parseRfc3339('2025-01-01 00:00:00Z')).toBeNull();
  });
});
