/**
 * RFC 3339 date-times as clients write them, read into an instant.
 *
 * Besides the standard form (`2015-11-10T15:06:09+08:00`, `…Z`, fractional seconds, `t`/`z` or a space
 * for `T` as RFC 3339 §5.6 allows), this reads the form datahub's seed writes in every sample,
 * `2015-11-10T15:06:09Z08:00`: a literal `Z` followed by an offset, which is not RFC 3339. Its producers
 * (in China) meant local time at +08:00, so `Z` + offset is read as that offset (`Z08:00` as +08:00,
 * `Z-05:00` as -05:00). Anything else, or a date that does not exist (Feb 30, hour 24), is not a time.
 */
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(?:([Zz])|([+-])(\d{2}):(\d{2})|[Zz]([+-]?)(\d{2}):(\d{2}))$/;

/** The instant `text` names, as an ISO string in UTC (`Date.prototype.toISOString`), or undefined. */
export function parseRfc3339(text: string): string | undefined {
  const match = RFC3339.exec(text);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = match[7] ?? '';
  const sign = match[9] ?? (match[12] === '-' ? '-' : '+');
  const offsetHours = Number(match[10] ?? match[13] ?? 0);
  const offsetMinutes = Number(match[11] ?? match[14] ?? 0);
  // A leap second (60) is rare and only ever the last second of a UTC day; read it as that second's end.
  if (
    month < 1 ||
    month > 12 ||
    day < 1 ||
    hour > 23 ||
    minute > 59 ||
    second > 60 ||
    offsetHours > 23 ||
    offsetMinutes > 59
  )
    return undefined;
  const local = Date.UTC(
    year,
    month - 1,
    day,
    hour,
    minute,
    Math.min(second, 59),
    Math.floor(Number(`0${fraction || '.0'}`) * 1000),
  );
  const date = new Date(local);
  // Date.UTC rolls Feb 30 into March, and years 0-99 into 1900-1999: a rolled date is not the one written.
  date.setUTCFullYear(year);
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined;
  const offset = (sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  const instant = new Date(date.getTime() - offset);
  // Years 1-9999 after the offset: the four-digit years every store and client reads.
  const utcYear = instant.getUTCFullYear();
  return Number.isNaN(instant.getTime()) || utcYear < 1 || utcYear > 9999 ? undefined : instant.toISOString();
}
