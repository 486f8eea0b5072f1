import { expect } from 'chai';
import { parseRfc3339 } from '../../domain/rfc3339';

describe('parseRfc3339: times as clients write them (domain/rfc3339.ts)', () => {
  it('reads RFC 3339 and the seed 001 form `Z08:00` (a literal Z, then the offset) as that offset', () => {
    const cases: Array<[string, string]> = [
      ['2015-11-10T15:06:09Z08:00', '2015-11-10T07:06:09.000Z'],
      ['2015-11-10T15:06:09Z+08:00', '2015-11-10T07:06:09.000Z'],
      ['2015-11-10T15:06:09Z-05:00', '2015-11-10T20:06:09.000Z'],
      ['2015-11-10T15:06:09+08:00', '2015-11-10T07:06:09.000Z'],
      ['2015-11-10T15:06:09Z', '2015-11-10T15:06:09.000Z'],
      ['2015-11-10t15:06:09.123456z', '2015-11-10T15:06:09.123Z'],
      ['2015-11-10 15:06:09-05:30', '2015-11-10T20:36:09.000Z'],
      ['2016-02-29T00:00:00Z', '2016-02-29T00:00:00.000Z'],
      ['0050-01-01T00:00:00Z', '0050-01-01T00:00:00.000Z'],
    ];
    for (const [text, instant] of cases) expect(parseRfc3339(text), text).to.equal(instant);
  });

  it('refuses what is not a time: no offset, impossible dates and hours, other formats, years outside 1-9999', () => {
    for (const text of [
      '',
      'yesterday',
      '2015-11-10T15:06:09',
      '2015-02-30T00:00:00Z',
      '2015-11-10T24:00:00Z',
      '2015-13-01T00:00:00Z',
      '2015-11-10T15:06:09+24:00',
      '1447139169',
      '0001-01-01T00:00:00+01:00',
      '2015-11-10T15:06:09Z08',
    ]) {
      expect(parseRfc3339(text), text).to.equal(undefined);
    }
  });
});
