import { GraphQLError, GraphQLScalarType } from 'graphql';
import { DateTimeResolver } from 'graphql-scalars';

/**
 * The contract's scalars, from graphql-scalars: DateTime (an instant; inputs with any offset) and
 * JSONObject. Use them as `@Field(() => DateTimeScalar)`.
 */
export { JSONObjectResolver as JSONObjectScalar } from 'graphql-scalars';

/** The instants a DateTime input may name: the years 0001 to 9999, as in the ISO text form, in UTC. */
export const EARLIEST_INSTANT = new Date('0001-01-01T00:00:00.000Z');
export const LATEST_INSTANT = new Date('9999-12-31T23:59:59.999Z');

/**
 * An offset moves a valid text outside those years ("9999-12-31T23:59:59-14:00" is in the year
 * 10000), and PostgreSQL refuses the ISO text the driver sends for such instants (`+010000-…`,
 * `0000-…`): the query failed with an INTERNAL_SERVER_ERROR. Refused here, as a bad value.
 */
function withinYears(value: Date): Date {
  const time = value.getTime();
  if (time < EARLIEST_INSTANT.getTime() || time > LATEST_INSTANT.getTime()) {
    throw new GraphQLError('DateTime must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (UTC).');
  }
  return value;
}

/** graphql-scalars' DateTime, with the same name and description, refusing instants outside the years 1-9999. */
export const DateTimeScalar = new GraphQLScalarType<Date, Date>({
  ...DateTimeResolver.toConfig(),
  parseValue: (value) => withinYears(DateTimeResolver.parseValue(value)),
  parseLiteral: (node, variables) => withinYears(DateTimeResolver.parseLiteral(node, variables)),
});
