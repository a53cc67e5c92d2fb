import { describe, expect, it } from 'vitest';
import { endOfMonth, startOfMonth, zonedTimeToInstant } from '../../src/clock.js';

/**
 * Wall times in a zone → instants (src/clock.ts), which condition timestamps without an offset,
 * batch expiries and month boundaries all go through — in any configured zone, DST included.
 */

const at = (zone: string, ...wall: [number, number, number, number?, number?, number?]) =>
  zonedTimeToInstant(zone, ...wall).toISOString();

describe('zonedTimeToInstant', () => {
  it('reads ordinary wall times in zones east and west of UTC', () => {
    expect(at('Asia/Shanghai', 2025, 1, 1)).toBe('2024-12-31T16:00:00.000Z');
    expect(at('America/New_York', 2025, 7, 1, 12)).toBe('2025-07-01T16:00:00.000Z');
    expect(at('UTC', 2024, 2, 29, 23, 59, 59)).toBe('2024-02-29T23:59:59.000Z');
    // Overflowing month and day, as Date.UTC allows: day 0 of March is the last of February.
    expect(at('Asia/Shanghai', 2024, 3, 0, 23, 59, 59)).toBe('2024-02-29T15:59:59.000Z');
  });

  it.each([
    // Zones whose clocks jump at midnight: the day starts at 01:00, on that day (not 23:00 the day before).
    ['America/Santiago', [2024, 9, 8], '2024-09-08T04:00:00.000Z'],
    ['America/Sao_Paulo', [2018, 11, 4], '2018-11-04T03:00:00.000Z'],
    ['America/Havana', [2024, 3, 10, 0, 30], '2024-03-10T05:30:00.000Z'],
    ['Asia/Beirut', [2024, 3, 31], '2024-03-30T22:00:00.000Z'],
    // The usual 02:00 → 03:00 jumps, east and west of UTC.
    ['America/New_York', [2024, 3, 10, 2, 30], '2024-03-10T07:30:00.000Z'],
    ['Europe/Berlin', [2024, 3, 31, 2, 30], '2024-03-31T01:30:00.000Z'],
  ] as const)('in a gap (%s %j) moves forward by the gap', (zone, wall, expected) => {
    const instant = zonedTimeToInstant(zone, ...(wall as unknown as [number, number, number]));
    expect(instant.toISOString()).toBe(expected);
  });

  it.each([
    // Clocks set back: the wall time happens twice; the earlier instant is the one.
    ['America/New_York', [2024, 11, 3, 1, 30], '2024-11-03T05:30:00.000Z'],
    ['Europe/Berlin', [2024, 10, 27, 2, 30], '2024-10-27T00:30:00.000Z'],
    ['America/Santiago', [2024, 4, 6, 23, 30], '2024-04-07T02:30:00.000Z'],
  ] as const)('in an overlap (%s %j) takes the earlier instant', (zone, wall, expected) => {
    const instant = zonedTimeToInstant(zone, ...(wall as unknown as [number, number, number]));
    expect(instant.toISOString()).toBe(expected);
  });
});

describe('month boundaries in a zone whose DST starts at midnight', () => {
  it('the start of the month is its first instant (not an hour of the month before), its end the last second', () => {
    // Paraguay set its clocks forward at 00:00 on 1 October 2017: that month starts at 01:00 (-03).
    expect(startOfMonth(new Date('2017-10-15T12:00:00Z'), 'America/Asuncion').toISOString()).toBe(
      '2017-10-01T04:00:00.000Z',
    );
    expect(endOfMonth(new Date('2017-09-15T12:00:00Z'), 'America/Asuncion').toISOString()).toBe(
      '2017-10-01T03:59:59.000Z',
    );
  });
});
