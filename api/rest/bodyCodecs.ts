import express from 'express';
import { isLeft } from 'fp-ts/lib/Either';
import * as t from 'io-ts';
import { badInput } from './shimErrors';

/** io-ts pieces the JSON shims (ONE-PUSH, topvdn) decode their bodies with. */

/** A number as JSON gives it, or as text (the legacy services, Jackson behind them, took both). */
export const Integer = new t.Type<number, number, unknown>(
  'Integer',
  (u): u is number => typeof u === 'number' && Number.isSafeInteger(u),
  (u, c) => {
    const n = typeof u === 'string' && /^-?\d{1,15}$/.test(u.trim()) ? Number(u) : u;
    return typeof n === 'number' && Number.isSafeInteger(n) ? t.success(n) : t.failure(u, c, 'an integer');
  },
  t.identity,
);

/**
 * A whole number of any size, for a value that is clamped rather than refused when large (ONE-PUSH
 * `duration`: a Java client's Long.MAX_VALUE, 9223372036854775807, is past Number's exact integers).
 */
export const WholeNumber = new t.Type<number, number, unknown>(
  'Integer',
  (u): u is number => typeof u === 'number' && Number.isInteger(u),
  (u, c) => {
    const n = typeof u === 'string' && /^-?\d{1,19}$/.test(u.trim()) ? Number(u) : u;
    return typeof n === 'number' && Number.isInteger(n) ? t.success(n) : t.failure(u, c, 'an integer');
  },
  t.identity,
);

export const Text = new t.Type<string, string, unknown>(
  'Text',
  (u): u is string => typeof u === 'string',
  (u, c) => (typeof u === 'string' ? t.success(u) : t.failure(u, c, 'a string')),
  t.identity,
);

/**
 * An optional field, absent also when sent as null or empty: `""` (what forms and many clients send for
 * "not given", e.g. the seed's `"mobile": ""`), and, for a field that is not text (a number, a boolean),
 * blanks too — `"badge": " "` says no more than `""`. Decoded as null; a text field keeps blanks as sent.
 */
export const optional = <C extends t.Mixed>(codec: C) =>
  new t.Type<t.TypeOf<C> | null, t.OutputOf<C> | null, unknown>(
    codec.name,
    (u): u is t.TypeOf<C> | null => u === null || codec.is(u),
    (u, c) => {
      if (u === null || u === '') return t.success(null);
      const decoded = codec.validate(u, c);
      return isLeft(decoded) && typeof u === 'string' && u.trim() === '' ? t.success(null) : decoded;
    },
    (a) => (a === null ? null : (codec.encode(a) as t.OutputOf<C>)),
  );

/**
 * The body decoded, or a 400 naming the first failing field: `payload[2].msg: is required`. An
 * array's elements are shown by index; the numeric keys io-ts gives the members of an intersection
 * or union are left out.
 */
export function decodeBody<A>(codec: t.Decoder<unknown, A>, body: unknown): A {
  const decoded = codec.decode(body);
  if (isLeft(decoded)) {
    const [first] = decoded.left;
    const context = first?.context ?? [];
    let field = '';
    context.forEach((entry, i) => {
      if (entry.key === '') return;
      const parent = context[i - 1]?.type;
      if (parent instanceof t.ArrayType || parent instanceof t.ReadonlyArrayType) field += `[${entry.key}]`;
      else if (!/^\d+$/.test(entry.key)) field += field === '' ? entry.key : `.${entry.key}`;
    });
    const value = first?.value;
    throw badInput(
      field
        ? `${field}: ${value === undefined ? 'is required' : `must be ${first?.message ?? context[context.length - 1]?.type.name}`}`
        : 'the body must be a JSON object',
    );
  }
  return decoded.right;
}

/**
 * The body read as JSON whatever its Content-Type, and in the charset it names: express.json takes only
 * `utf-…` names and refuses (415) the `charset=utf8` PHP and Java clients write and a legacy Chinese
 * stack's `charset=GBK` — for a body that is ASCII JSON. Decoded as the charset says (UTF-8 when none;
 * a BOM is dropped), then parsed as express.json's strict mode does: an object or an array. Errors go to
 * the router's error handler, which answers them as shimErrors bodyError does (status 400 for what is not
 * JSON, 413 over `limit`, 415 an unknown charset).
 */
export function anyJsonBody(limit: string): express.RequestHandler[] {
  return [
    express.text({ type: () => true, limit }),
    (req, _res, next) => {
      const text: unknown = req.body;
      if (typeof text !== 'string') return next();
      if (text.trim() === '') {
        req.body = {};
        return next();
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return next(Object.assign(new SyntaxError('malformed JSON body'), { status: 400 }));
      }
      if (typeof body !== 'object' || body === null)
        return next(
          Object.assign(new SyntaxError('the body must be a JSON object or array'), {
            status: 400,
            type: 'json.not_object',
          }),
        );
      req.body = body;
      next();
    },
  ];
}
