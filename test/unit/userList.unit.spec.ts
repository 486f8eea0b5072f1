import { expect } from 'chai';
import { isUserId, splitUserList } from '../../domain/ticket/ticket';

// One splitter for every user list (Koala `users`, datahub `receiver`, topic messages, GraphQL `to`).
describe('user lists (domain/ticket/ticket.ts)', () => {
  it("splits the seed's lists, and the same lists typed with a Chinese input method", () => {
    expect(splitUserList('jiangxiaoyu,zhouyang')).to.deep.equal(['jiangxiaoyu', 'zhouyang']);
    expect(splitUserList('zhang3@example.com li4@example.com john@example.com')).to.deep.equal([
      'zhang3@example.com',
      'li4@example.com',
      'john@example.com',
    ]);
    expect(splitUserList('jiangxiaoyu，zhouyang')).to.deep.equal(['jiangxiaoyu', 'zhouyang']);
    expect(splitUserList('a;b；c、d\u3000e\tf\ng, h ，i')).to.deep.equal(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    expect(splitUserList(' ,;，')).to.deep.equal([]);
    expect(splitUserList('')).to.deep.equal([]);
  });

  it('refuses a user id holding a separator, so every list splits back into the ids it was made of', () => {
    for (const userId of ['a b', 'a,b', 'a;b', 'a，b', 'a；b', 'a、b', 'a\u3000b'])
      expect(isUserId(userId), userId).to.equal(false);
    for (const userId of ['zhangbin', 'zhang3@example.com', '张三', '😀'.repeat(128)]) {
      expect(isUserId(userId), userId).to.equal(true);
      expect(splitUserList(userId)).to.deep.equal([userId]);
    }
    expect(isUserId('😀'.repeat(129))).to.equal(false);
  });
});
