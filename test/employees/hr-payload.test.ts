import { describe, expect, it } from 'vitest';
import { HrPayloadError } from '../../src/modules/employees/hr-crypto.js';
import { parseDepartments, parseEmployees } from '../../src/modules/employees/hr-payload.js';

describe('parseEmployees', () => {
  it('reads the HR fields', () => {
    const text = JSON.stringify([
      { badge: '000001', Name: 'Li Lei', DepID: '3', email: 'lilei@example.com', TEL: '13800000001' },
      { badge: ' 000002 ', Name: ' Han Meimei ', DepID: 7, email: null },
    ]);
    expect(parseEmployees(text)).toEqual([
      { badge: '000001', name: 'Li Lei', depId: '3' },
      { badge: '000002', name: 'Han Meimei', depId: '7' },
    ]);
  });

  it('reads an empty or missing DepID as "no department" (the sync skips such an employee)', () => {
    const text = JSON.stringify([
      { badge: '1', Name: 'A', DepID: '' },
      { badge: '2', Name: 'B', DepID: null },
      { badge: '3', Name: 'C' },
    ]);
    expect(parseEmployees(text).map((employee) => employee.depId)).toEqual([null, null, null]);
  });

  it('reads numeric ids in one canonical form', () => {
    expect(parseEmployees('[{"badge":"1","Name":"A","DepID":"007"}]')[0]?.depId).toBe('7');
  });

  it('accepts an empty array (the sync decides what an empty feed means)', () => {
    expect(parseEmployees('[]')).toEqual([]);
  });

  it.each([
    ['not JSON', '[{"badge":', /not JSON/],
    ['not an array', '{"badge":"1"}', /not a JSON array/],
    ['an item that is not an object', '["000001"]', /employees\[0\] is not an object/],
    ['a missing badge', '[{"Name":"A","DepID":"1"}]', /badge must be a string/],
    ['a numeric badge (leading zeros would be lost)', '[{"badge":1,"Name":"A","DepID":"1"}]', /badge must be a string/],
    ['an empty badge', '[{"badge":"  ","Name":"A","DepID":"1"}]', /badge must not be empty/],
    ['an over-long badge', JSON.stringify([{ badge: 'x'.repeat(101), Name: 'A', DepID: '1' }]), /longer than 100/],
    ['a missing Name', '[{"badge":"1","DepID":"1"}]', /Name must be a string/],
    ['a non-numeric DepID', '[{"badge":"1","Name":"A","DepID":"R&D"}]', /DepID must be a numeric id/],
    ['a negative DepID', '[{"badge":"1","Name":"A","DepID":-1}]', /DepID must be a numeric id/],
    ['an object email', '[{"badge":"1","Name":"A","DepID":"1","email":{}}]', /email must be a string/],
    // Characters PostgreSQL cannot store as text: the sync failed at the insert instead.
    ['a NUL in a Name', '[{"badge":"1","Name":"A\\u0000B","DepID":"1"}]', /employees\[0\]\.Name contains a NUL/],
    ['a lone surrogate in a badge', '[{"badge":"1\\ud800","Name":"A","DepID":"1"}]', /badge contains an unpaired/],
  ])('refuses %s', (_case, text, message) => {
    expect(() => parseEmployees(text)).toThrow(HrPayloadError);
    expect(() => parseEmployees(text)).toThrow(message);
  });

  it('never repeats payload values (personal data) in its messages', () => {
    expect(() => parseEmployees('[{"badge":"1","Name":"A","DepID":"secret-value"}]')).toThrow(/^(?!.*secret-value).*$/);
  });
});

describe('parseDepartments', () => {
  it('reads the HR fields (AdminId a number, 0 = root)', () => {
    const text = JSON.stringify([
      { Id: '1', AdminId: 0, Name: 'Corp', DepGrade: 1, DepartmentStatus: 1 },
      { Id: 2, AdminId: '1', Name: ' R&D ', DepGrade: 2, DepartmentStatus: 1 },
    ]);
    expect(parseDepartments(text)).toEqual([
      { id: '1', parentId: '0', name: 'Corp' },
      { id: '2', parentId: '1', name: 'R&D' },
    ]);
  });

  it.each([
    ['a missing Id', '[{"AdminId":0,"Name":"A"}]', /Id must be a numeric id/],
    ['a missing AdminId', '[{"Id":"1","Name":"A"}]', /AdminId must be a numeric id/],
    ['a fractional AdminId', '[{"Id":"1","AdminId":1.5,"Name":"A"}]', /AdminId must be a numeric id/],
    ['an empty Name', '[{"Id":"1","AdminId":0,"Name":""}]', /Name must not be empty/],
    ['a repeated Id', '[{"Id":"1","AdminId":0,"Name":"A"},{"Id":"01","AdminId":0,"Name":"B"}]', /appears twice/],
    ['null items', '[null]', /not an object/],
    ['a NUL in a Name', '[{"Id":"1","AdminId":0,"Name":"R\\u0000D"}]', /departments\[0\]\.Name contains a NUL/],
  ])('refuses %s', (_case, text, message) => {
    expect(() => parseDepartments(text)).toThrow(message);
  });
});
