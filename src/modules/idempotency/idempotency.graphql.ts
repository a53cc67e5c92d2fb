/** The one description of the `idempotencyKey` argument, so every mutation documents it alike. */
export const IDEMPOTENCY_KEY_DESCRIPTION =
  'optional, 1-255 visible ASCII characters (a UUID): the same key with the same arguments returns the first ' +
  'result and does nothing again (also when calls race); with other arguments it is refused with CONFLICT. ' +
  'Keys are remembered at least 24 hours. A refused call keeps no key and may be retried with it.';
