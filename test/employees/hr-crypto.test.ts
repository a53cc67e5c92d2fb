import { describe, expect, it } from 'vitest';
import {
  decodeXmlEntities,
  decryptHrPayload,
  encryptHrPayload,
  HrPayloadError,
  unwrapXml,
  wrapInXml,
} from '../../src/modules/employees/hr-crypto.js';

// TEST-VECTORS.md, "HR payload (SPEC §7)".
const KEY = 'TEST_EMP_KEY_32_BYTES_1234567890';
const SERVED =
  '8qqiriwGwM+L9ujNoYZA0PYY1VTsuGrvpOHZe0tZ5OzfGgpNRYcxtQV+cQoaH1foJ8eIpWxKfp8H1/Od5+7Kp+wodtzHh74lan0DoyTuvSYaYHeBkSTM/95+coEA4cQTXKCu9Ek/SuDKrLhE8LHUjQ==';
const DECRYPTED = '[{"badge":"000001","Name":"Li Lei","DepID":"3","email":"lilei@example.com","TEL":"13800000001"}]';
const WRAPPED = `<?xml version="1.0" encoding="utf-8"?><string xmlns="http://tempuri.org/">${SERVED}</string>`;

describe('HR payload decryption (TEST-VECTORS)', () => {
  it('decrypts the test vector byte for byte', () => {
    expect(decryptHrPayload(SERVED, KEY)).toBe(DECRYPTED);
    expect(Buffer.from(decryptHrPayload(SERVED, KEY), 'utf8').equals(Buffer.from(DECRYPTED, 'utf8'))).toBe(true);
  });

  it('decrypts the XML-wrapped test vector byte for byte', () => {
    expect(decryptHrPayload(WRAPPED, KEY)).toBe(DECRYPTED);
  });

  it('encrypts the test vector back to the served text (AES-256-ECB, PKCS#7)', () => {
    expect(encryptHrPayload(DECRYPTED, KEY)).toBe(SERVED);
    expect(decryptHrPayload(wrapInXml(SERVED), KEY)).toBe(DECRYPTED);
  });

  it('accepts surrounding white space and line breaks inside the base64 text', () => {
    const folded = `\n  ${SERVED.slice(0, 40)}\r\n${SERVED.slice(40, 100)}\n${SERVED.slice(100)}  \n`;
    expect(decryptHrPayload(folded, KEY)).toBe(DECRYPTED);
    expect(decryptHrPayload(`<string>\n${folded}\n</string>`, KEY)).toBe(DECRYPTED);
  });

  it.each([16, 24, 32])('uses AES-%i-byte keys (AES-128/192/256) as raw bytes', (length) => {
    const key = 'k'.repeat(length);
    const text = '[{"Id":"1","AdminId":0,"Name":"Root ✓ 总部"}]';
    const served = encryptHrPayload(text, key);
    expect(decryptHrPayload(served, key)).toBe(text);
    expect(decryptHrPayload(served, Buffer.from(key))).toBe(text);
  });

  it('refuses a key that is not 16, 24 or 32 bytes', () => {
    expect(() => decryptHrPayload(SERVED, 'short')).toThrow(HrPayloadError);
    expect(() => decryptHrPayload(SERVED, 'é'.repeat(10))).toThrow(/got 20/);
  });

  it('refuses the payload under a wrong key, without leaking key or payload in the message', () => {
    let error: unknown;
    try {
      decryptHrPayload(SERVED, 'WRONG_EMP_KEY_32_BYTES_123456789');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(HrPayloadError);
    const message = (error as Error).message;
    expect(message).toMatch(/wrong key|not UTF-8/);
    expect(message).not.toContain('WRONG_EMP');
    expect(message).not.toContain(SERVED.slice(0, 10));
  });

  it('refuses text that is not strict standard base64', () => {
    expect(() => decryptHrPayload('not base64 at all!', KEY)).toThrow(/base64/);
    expect(() => decryptHrPayload(SERVED.replace(/\+/g, '-'), KEY)).toThrow(/base64/); // base64url alphabet
    expect(() => decryptHrPayload(SERVED.slice(0, -2), KEY)).toThrow(/base64/); // bad length
    expect(() => decryptHrPayload('', KEY)).toThrow(/empty/);
    expect(() => decryptHrPayload('<string/>', KEY)).toThrow(/empty/);
  });

  it('refuses a ciphertext that is not a whole number of blocks', () => {
    const short = Buffer.from(SERVED, 'base64').subarray(0, 40).toString('base64');
    expect(() => decryptHrPayload(short, KEY)).toThrow(/blocks/);
  });

  it('refuses a truncated ciphertext (padding no longer checks out)', () => {
    const truncated = Buffer.from(SERVED, 'base64').subarray(0, 96).toString('base64');
    expect(() => decryptHrPayload(truncated, KEY)).toThrow(HrPayloadError);
  });
});

describe('the XML wrapper', () => {
  it('takes the root element text with entities decoded', () => {
    expect(unwrapXml('<string>a&amp;b&lt;c&gt;d&quot;e&apos;f&#65;&#x42;</string>')).toBe(`a&b<c>d"e'fAB`);
    expect(decodeXmlEntities('&amp;lt;')).toBe('&lt;');
  });

  it('takes CDATA sections as they are', () => {
    expect(unwrapXml('<?xml version="1.0"?><r><![CDATA[x&amp;<y>]]>z</r>')).toBe('x&amp;<y>z');
  });

  it('skips the declaration, comments and a doctype before the root', () => {
    expect(
      unwrapXml('\uFEFF<?xml version="1.0"?>\n<!-- c --><!DOCTYPE string><ns:string a="1">abc</ns:string>\n'),
    ).toBe('abc');
  });

  it('returns non-XML text unchanged (trimmed)', () => {
    expect(unwrapXml('  abc= \n')).toBe('abc=');
  });

  it('refuses nested elements, mismatched tags, unknown entities and open CDATA', () => {
    expect(() => unwrapXml('<a><b>x</b></a>')).toThrow(HrPayloadError);
    expect(() => unwrapXml('<a>x</b>')).toThrow(HrPayloadError);
    expect(() => unwrapXml('<a>x&nbsp;</a>')).toThrow(/entity/);
    expect(() => unwrapXml('<a><![CDATA[x</a>')).toThrow(/CDATA/);
    expect(() => unwrapXml('<a>x</a><b>y</b>')).toThrow(HrPayloadError);
  });
});
