/**
 * The contract's scalars, from graphql-scalars: DateTime (an instant; inputs with any offset) and
 * JSONObject. Use them as `@Field(() => DateTimeScalar)`.
 */
export { DateTimeResolver as DateTimeScalar, JSONObjectResolver as JSONObjectScalar } from 'graphql-scalars';
