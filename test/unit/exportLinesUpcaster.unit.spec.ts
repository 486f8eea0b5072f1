import { expect } from 'chai';
import { EventVersions, type Upcaster } from '../../domain/eventVersions';
import { linesUpcaster } from '../../src/eventStore/upcastingEventStore';

/** `Noted` version 1 → 2 appends 2 to `data.steps`. */
const noted: Upcaster = {
  type: 'Noted',
  from: 1,
  to: 2,
  change: 'step 1',
  upcast: (data) => ({ ...(data as object), steps: [...(data as { steps: number[] }).steps, 2] }),
};

/** Export lines as the store writes them (`eventRecord`'s key order): an old `Noted`, another type, a long old `Noted`. */
const EXPORT = [
  '{"position":"1","streamName":"note-1","type":"Noted","data":{"steps":[1],"text":"通知"},"metadata":{}}',
  '{"position":"2","streamName":"other-1","type":"Other","data":{"text":"ü"},"metadata":{}}',
  `{"position":"3","streamName":"note-2","type":"Noted","data":{"steps":[1],"text":"${'长'.repeat(300)}"},"metadata":{}}`,
]
  .map((line) => `${line}\n`)
  .join('');

function run(chunks: readonly Buffer[]): string {
  const lines = linesUpcaster(new EventVersions([noted]));
  const out = chunks.map((chunk) => Buffer.from(lines.chunk(chunk)));
  const rest = lines.end();
  if (rest !== undefined) out.push(Buffer.from(rest));
  return Buffer.concat(out).toString();
}

describe("an export's lines upcast (UpcastingEventStore over the store's COPY)", () => {
  it('upcasts the old lines and passes the others through as they were', () => {
    const lines = run([Buffer.from(EXPORT)]).split('\n');
    expect(lines).to.have.length(4);
    expect(JSON.parse(lines[0]!)).to.deep.include({ data: { steps: [1, 2], text: '通知' } });
    expect(lines[1]).to.equal(EXPORT.split('\n')[1]);
    expect((JSON.parse(lines[2]!) as { data: { steps: number[] } }).data.steps).to.deep.equal([1, 2]);
    expect(lines[3]).to.equal('');
  });

  it('gives the same bytes however the store cuts its chunks, mid-line and mid-character included', () => {
    const whole = run([Buffer.from(EXPORT)]);
    const bytes = Buffer.from(EXPORT);
    for (let cut = 1; cut < bytes.length; cut += 7)
      expect(run([bytes.subarray(0, cut), bytes.subarray(cut)]), `cut at byte ${cut}`).to.equal(whole);
    const tiny = Array.from({ length: Math.ceil(bytes.length / 5) }, (_, i) => bytes.subarray(i * 5, i * 5 + 5));
    expect(run(tiny), 'five bytes a chunk').to.equal(whole);
  });

  it('writes a last line without its newline at the end', () => {
    const withoutNewline = EXPORT.slice(0, -1);
    expect(run([Buffer.from(withoutNewline)])).to.equal(run([Buffer.from(EXPORT)]).slice(0, -1));
  });
});
