import { expect } from 'chai';
import { characterCount, illFormedTextAt, notUnicode } from '../../domain/text';

/** Issue 21 item 5: the one rule every boundary refuses text that is not Unicode with. */
describe('illFormedTextAt: where decoded input holds a lone surrogate', () => {
  it('finds none in well-formed text, surrogate pairs included', () => {
    expect(illFormedTextAt({ a: 'plain', b: ['😀', '\ud83d\ude00'], c: { d: 1, e: null, f: true } })).to.equal(
      undefined,
    );
    expect(illFormedTextAt('😀')).to.equal(undefined);
    expect(illFormedTextAt(undefined)).to.equal(undefined);
  });

  it('names the path of a lone high or low surrogate in a value', () => {
    expect(illFormedTextAt('a\ud800b')).to.equal('');
    expect(illFormedTextAt({ nonce: 'a\ud800b' })).to.equal('nonce');
    expect(illFormedTextAt({ data: { items: ['ok', { text: '\udc00x' }] } })).to.equal('data.items[1].text');
    expect(illFormedTextAt(['\ud83d'])).to.equal('[0]');
  });

  it('refuses a key with one, naming it with U+FFFD in its place', () => {
    expect(illFormedTextAt({ data: { 'a\ud800b': 1 } })).to.equal('data.a\uFFFDb');
    expect(illFormedTextAt(JSON.parse('{"\\ud800": 1}'))).to.equal('\uFFFD');
  });

  it('walks JSON nested deeper than the call stack', () => {
    const depth = 200_000;
    const deep = JSON.parse(`${'['.repeat(depth)}"\\ud800"${']'.repeat(depth)}`) as unknown;
    expect(illFormedTextAt(deep)).to.equal(`${'[0]'.repeat(16)}…`);
  });

  it('notUnicode says what is wrong and where', () => {
    expect(notUnicode('nonce')).to.equal('nonce: must be Unicode text (no lone surrogates such as \\ud800)');
    expect(notUnicode('')).to.match(/^the text: /);
  });
});

/** Issue 22: limits documented in characters count code points, not UTF-16 units. */
describe('characterCount: characters as a documented limit counts them', () => {
  it('counts an emoji (a surrogate pair) once', () => {
    expect(characterCount('😀'.repeat(256))).to.equal(256);
    expect('😀'.repeat(256).length).to.equal(512);
  });

  it('counts ASCII, CJK and a lone surrogate one each', () => {
    expect(characterCount('')).to.equal(0);
    expect(characterCount('abc')).to.equal(3);
    expect(characterCount('系统升级')).to.equal(4);
    expect(characterCount('a\ud800b')).to.equal(3);
    expect(characterCount('\ud83d')).to.equal(1);
  });
});
