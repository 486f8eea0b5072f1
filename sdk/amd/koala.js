/*
 * koala.js as herald serves it (/sdk/koala.js): Koala's SDK had pages load require.js, tce.js, koala.js and
 * message_client.js (shared/seeds/000_83e3b79cc88886e5.txt, section 4). koala.js held the RPC interfaces
 * message_client was built on, among them `ITerminal` (the seed's `interface ITerminal { void
 * onMessage(Message_t message); }`), which a page could extend. herald's koala module keeps `ITerminal`
 * (its onMessage does nothing until a page overrides it) and hands out the same message_client, so
 * `require(['tce', 'koala', 'message_client'], ...)` works: an AMD module named 'koala' (depending on
 * 'message_client'), or the global `koala`.
 */
(function (root) {
  'use strict';
  function make(messageClient) {
    function ITerminal() {}
    ITerminal.prototype.onMessage = function (message, ctx) {};
    return { ITerminal: ITerminal, message_client: messageClient };
  }
  if (typeof define === 'function' && define.amd) define('koala', ['message_client'], make);
  else if (typeof module === 'object' && module.exports) module.exports = make(undefined);
  else root.koala = make(root.message_client);
})(typeof self !== 'undefined' ? self : this);
