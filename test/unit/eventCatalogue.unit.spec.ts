import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import * as t from 'io-ts';
import type { CatalogueEntry } from '../../domain/catalogueEntry';
import { EVENT_CATALOGUE, renderCatalogue, renderType } from '../../domain/eventCatalogue';
import type { Upcaster } from '../../domain/eventVersions';

const root = join(__dirname, '..', '..');

/** The events of a union and the fields of their data, read here without the catalogue's own walk. */
function unionEvents(union: t.Mixed): { type: string; fields: string[] }[] {
  const members = union instanceof t.UnionType ? (union.types as t.Mixed[]) : [union];
  return members.map((member) => {
    const { type, data } = (member as t.InterfaceType<{ type: t.LiteralType<string>; data: t.Mixed }>).props;
    const parts = data instanceof t.IntersectionType ? (data.types as t.Mixed[]) : [data];
    const fields = parts.flatMap((part) => Object.keys((part as t.InterfaceType<t.Props>).props));
    return { type: type.value, fields };
  });
}

/** The text of one event under one stream's heading in the rendered catalogue. */
function eventSection(markdown: string, entry: CatalogueEntry, type: string): string {
  const streamStart = markdown.indexOf(`## ${entry.title} (\`${entry.stream}\`)`);
  expect(streamStart, `a section for ${entry.stream}`).to.be.greaterThan(-1);
  const streamEnd = markdown.indexOf('\n## ', streamStart + 1);
  const stream = markdown.slice(streamStart, streamEnd === -1 ? undefined : streamEnd);
  const eventStart = stream.indexOf(`### \`${type}\``);
  expect(eventStart, `${type} under ${entry.stream}`).to.be.greaterThan(-1);
  const eventEnd = stream.indexOf('\n### ', eventStart + 1);
  return stream.slice(eventStart, eventEnd === -1 ? undefined : eventEnd);
}

const tinyEvent = (type: string) => t.type({ type: t.literal(type), data: t.type({ id: t.string }) });
const tinyCatalogue = (events: CatalogueEntry['events']): CatalogueEntry[] => [
  {
    title: 'tiny',
    stream: 'tiny-<id>',
    module: 'domain/tiny.ts',
    union: t.union([tinyEvent('TinyMade'), tinyEvent('TinyUnmade')]),
    events,
  },
];

describe('event catalogue (docs/events.md)', () => {
  it('the checked-in docs/events.md is the one the codecs make', () => {
    const checkedIn = readFileSync(join(root, 'docs', 'events.md'), 'utf8');
    expect(checkedIn === renderCatalogue(), 'docs/events.md is out of date: run npm run docs:events').to.equal(true);
  });

  it('lists every event of every union under its stream, with every field of its data', () => {
    const markdown = renderCatalogue();
    for (const entry of EVENT_CATALOGUE) {
      const events = unionEvents(entry.union);
      expect(events, entry.title).to.not.be.empty;
      for (const { type, fields } of events) {
        const section = eventSection(markdown, entry, type);
        expect(section).to.match(/\nWhen: \S/);
        for (const field of fields) expect(section, `${type}.${field}`).to.match(new RegExp(`\\n- \`${field}\\??: `));
      }
    }
  });

  it('names a module that exists for every stream', () => {
    for (const entry of EVENT_CATALOGUE) expect(existsSync(join(root, entry.module)), entry.module).to.equal(true);
  });

  it("renders the fields' types from the codecs", () => {
    const markdown = renderCatalogue();
    for (const field of [
      '`recipients: string[]`',
      '`expiresAt: string | null`',
      '`props: Record<string, string> | null`',
      '`time?: string`',
      '`reason: "offline" | "timeout"`',
      '`recipients: { deviceId: string, mobile: string }[]`',
      '`retry: "none" | "backoff" | "topvdn"`',
      'flag: 2 | 3, from: number | null',
    ]) {
      expect(markdown).to.contain(field);
    }
  });

  it('renders the other io-ts combinators', () => {
    expect(renderType(t.array(t.union([t.string, t.null])))).to.equal('(string | null)[]');
    expect(renderType(t.readonlyArray(t.keyof({ a: null, b: null })))).to.equal('("a" | "b")[]');
    expect(renderType(t.exact(t.type({ a: t.number })))).to.equal('{ a: number }');
    expect(renderType(t.readonly(t.partial({ a: t.boolean })))).to.equal('{ a?: boolean }');
    expect(renderType(t.intersection([t.type({ a: t.string }), t.partial({ b: t.string })]))).to.equal(
      '{ a: string, b?: string }',
    );
    expect(renderType(t.record(t.keyof({ x: null }), t.UnknownRecord))).to.equal(
      'Record<"x", Record<string, unknown>>',
    );
    expect(renderType(t.tuple([t.string, t.Int]))).to.equal('[string, number (Int)]');
    expect(
      renderType(t.brand(t.string, (s): s is t.Branded<string, { readonly Id: unique symbol }> => s.length > 0, 'Id')),
    ).to.equal('string (Id)');
    expect(renderType(t.refinement(t.string, (s) => s.length > 0))).to.equal('string');
    expect(renderType(t.literal('ALL'))).to.equal('"ALL"');
    expect(renderType(t.null)).to.equal('null');
  });

  it('renders a catalogue whose prose matches its union', () => {
    const markdown = renderCatalogue(
      tinyCatalogue({ TinyMade: { when: 'made', fields: { id: 'the id' } }, TinyUnmade: { when: 'unmade' } }),
    );
    expect(markdown).to.contain('### `TinyMade`\n\nWhen: made\n\n- `id: string` — the id');
    expect(markdown).to.contain('### `TinyUnmade`\n\nWhen: unmade\n\n- `id: string`');
  });

  it('refuses an event of the union without a "when" text', () => {
    expect(() => renderCatalogue(tinyCatalogue({ TinyMade: { when: 'made' } }))).to.throw(
      /TinyUnmade has no "when" text/,
    );
    expect(() => renderCatalogue(tinyCatalogue({ TinyMade: { when: 'made' }, TinyUnmade: { when: ' ' } }))).to.throw(
      /TinyUnmade has no "when" text/,
    );
  });

  it('refuses a "when" text for an event not in the union', () => {
    const events = { TinyMade: { when: 'made' }, TinyUnmade: { when: 'unmade' }, TinyRemade: { when: 'remade' } };
    expect(() => renderCatalogue(tinyCatalogue(events))).to.throw(/TinyRemade, which is not an event of the union/);
  });

  it('refuses a note on a field the event does not have', () => {
    const events = { TinyMade: { when: 'made', fields: { name: 'gone' } }, TinyUnmade: { when: 'unmade' } };
    expect(() => renderCatalogue(tinyCatalogue(events))).to.throw(/TinyMade\.name, which is not a field/);
  });

  const both = { TinyMade: { when: 'made' }, TinyUnmade: { when: 'unmade' } };
  const tinyStep = (type: string, from: number): Upcaster => ({
    type,
    from,
    to: from + 1,
    change: `change ${from}`,
    upcast: (data) => data,
  });

  it("renders an event's schema version and each change that led to it; nothing for version 1", () => {
    const [entry] = tinyCatalogue(both);
    const markdown = renderCatalogue([{ ...entry!, upcasters: [tinyStep('TinyMade', 2), tinyStep('TinyMade', 1)] }]);
    expect(markdown).to.contain(
      '### `TinyMade`\n\nWhen: made\n\nSchema version 3; older events are upcast on read:\n' +
        '- 1 → 2: change 1\n- 2 → 3: change 2\n\n- `id: string`',
    );
    expect(markdown).to.contain('### `TinyUnmade`\n\nWhen: unmade\n\n- `id: string`');
  });

  it('refuses an upcaster of an event not in the union, and a chain with a missing step', () => {
    const [entry] = tinyCatalogue(both);
    expect(() => renderCatalogue([{ ...entry!, upcasters: [tinyStep('TinyRemade', 1)] }])).to.throw(
      /an upcaster of TinyRemade, which is not an event of the union/,
    );
    expect(() => renderCatalogue([{ ...entry!, upcasters: [tinyStep('TinyMade', 2)] }])).to.throw(
      /TinyMade: no upcaster from version 1/,
    );
  });
});
