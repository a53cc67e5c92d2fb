import { type Logger, pino, stdTimeFunctions } from 'pino';

export type { Logger };

/**
 * JSON logs on stdout. Request-scoped loggers are children carrying requestId, userId and the
 * operation name (see src/server.ts). Credentials never reach a log line: the redaction list
 * covers the places they could appear.
 */
export function createLogger(level: string, name = 'quota-manager'): Logger {
  return pino({
    name,
    level,
    base: { service: name },
    timestamp: stdTimeFunctions.isoTime,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'token', 'secret', 'key'],
      censor: '[redacted]',
    },
  });
}

/** A logger that drops everything: for tests and tools that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
