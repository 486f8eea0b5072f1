/*
 * tce.js as herald serves it (/sdk/tce.js): Koala's SDK had pages load require.js, tce.js, koala.js and
 * message_client.js (shared/seeds/000_83e3b79cc88886e5.txt, section 4). tce was the binary RPC runtime
 * Koala's message_client spoke over its WebSocket; herald's message_client speaks GraphQL over WebSocket
 * and needs none of it. This module exists so a page (or a module) that still lists 'tce' loads: an AMD
 * module named 'tce', or the global `tce`. It holds nothing to call.
 */
(function (root) {
  'use strict';
  var tce = { runtime: 'herald', note: 'not needed: message_client talks to herald over GraphQL' };
  if (typeof define === 'function' && define.amd)
    define('tce', [], function () {
      return tce;
    });
  else if (typeof module === 'object' && module.exports) module.exports = tce;
  else root.tce = tce;
})(typeof self !== 'undefined' ? self : this);
