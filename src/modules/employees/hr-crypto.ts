import { createCipheriv, createDecipheriv } from 'node:crypto';

/**
 * The HR system's wire format (SPEC §7): standard base64 of AES-ECB/PKCS#7 ciphertext, the key being
 * the raw bytes of the configured string (16/24/32 bytes → AES-128/192/256), optionally wrapped in an
 * XML document whose root element holds the text. ECB is the HR system's choice, not ours; we only
 * read it.
 */

/** Why a payload could not be read; the message never contains key material or payload bytes. */
export class HrPayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HrPayloadError';
  }
}

const BLOCK_BYTES = 16;

function cipherName(key: Buffer): string {
  if (![16, 24, 32].includes(key.length)) {
    throw new HrPayloadError(`the key must be 16, 24 or 32 bytes, got ${key.length}`);
  }
  return `aes-${key.length * 8}-ecb`;
}

function keyBytes(key: string | Buffer): Buffer {
  return typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Replaces the five XML entities and numeric character references; an unknown entity is an error. */
export function decodeXmlEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (_match, entity: string) => {
    if (entity.startsWith('#x')) return String.fromCodePoint(Number.parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(Number.parseInt(entity.slice(1), 10));
    const named = XML_ENTITIES[entity];
    if (named === undefined) throw new HrPayloadError(`unknown XML entity &${entity};`);
    return named;
  });
}

/**
 * The served text without its optional XML wrapper: `<?xml …?><string xmlns="…">TEXT</string>` →
 * TEXT (entity-decoded; CDATA sections taken as they are). Text that does not start with `<` is
 * returned trimmed, as it is.
 */
export function unwrapXml(served: string): string {
  let text = served.replace(/^\uFEFF/, '').trim();
  if (!text.startsWith('<')) return text;
  // Prolog: the XML declaration, comments and a doctype may precede the root element.
  text = text.replace(/^(\s*(<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<!DOCTYPE[^>]*>))*\s*/i, '');
  const selfClosing = /^<([A-Za-z_][\w.:-]*)(\s[^>]*)?\/>\s*$/.exec(text);
  if (selfClosing) return '';
  const element = /^<([A-Za-z_][\w.:-]*)(\s[^>]*)?>([\s\S]*)<\/\1\s*>\s*$/.exec(text);
  if (!element) throw new HrPayloadError('the XML wrapper is not a single root element holding text');
  const inner = element[3] as string;
  let result = '';
  let rest = inner;
  // Text and CDATA sections only: a nested element means this is not the wrapper we know.
  while (rest.length > 0) {
    const cdataStart = rest.indexOf('<![CDATA[');
    const plain = cdataStart === -1 ? rest : rest.slice(0, cdataStart);
    if (plain.includes('<')) throw new HrPayloadError('the XML root element holds elements, not text');
    result += decodeXmlEntities(plain);
    if (cdataStart === -1) break;
    const cdataEnd = rest.indexOf(']]>', cdataStart);
    if (cdataEnd === -1) throw new HrPayloadError('unterminated CDATA section in the XML wrapper');
    result += rest.slice(cdataStart + 9, cdataEnd);
    rest = rest.slice(cdataEnd + 3);
  }
  return result.trim();
}

/** Strict standard base64 (white space such as line breaks allowed between characters). */
export function decodeStrictBase64(text: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0) throw new HrPayloadError('the payload is empty');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    throw new HrPayloadError('the payload is not standard base64');
  }
  return Buffer.from(compact, 'base64');
}

/** Decrypts one served payload (plain or XML-wrapped) to its UTF-8 text. */
export function decryptHrPayload(served: string, key: string | Buffer): string {
  const bytes = keyBytes(key);
  const algorithm = cipherName(bytes);
  const ciphertext = decodeStrictBase64(unwrapXml(served));
  if (ciphertext.length % BLOCK_BYTES !== 0) {
    throw new HrPayloadError(`the ciphertext is not a whole number of AES blocks (${ciphertext.length} bytes)`);
  }
  let plain: Buffer;
  try {
    const decipher = createDecipheriv(algorithm, bytes, null);
    plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    // OpenSSL says "bad decrypt": the padding did not check out, which is what a wrong key gives.
    throw new HrPayloadError('the payload does not decrypt with the configured key (wrong key or corrupted data)');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(plain).replace(/^\uFEFF/, '');
  } catch {
    throw new HrPayloadError('the decrypted payload is not UTF-8 text (wrong key or corrupted data)');
  }
}

/** The inverse, for the HR simulator and tests: UTF-8 text → base64 of AES-ECB/PKCS#7. */
export function encryptHrPayload(plain: string, key: string | Buffer): string {
  const bytes = keyBytes(key);
  const cipher = createCipheriv(cipherName(bytes), bytes, null);
  return Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]).toString('base64');
}

/** The XML wrapper some HR deployments put around the text (a .NET web service's `string` result). */
export function wrapInXml(text: string): string {
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return `<?xml version="1.0" encoding="utf-8"?><string xmlns="http://tempuri.org/">${escaped}</string>`;
}
