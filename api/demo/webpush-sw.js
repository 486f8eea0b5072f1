// herald's demo service worker (docs/platform-push.md, "Web Push"): shows each message herald pushes to
// this browser while its page is closed. The payload is JSON: a ONE-PUSH message's frame fields
// ({messageId, appId, tenantCode, alert, extra, pushMsgType, needConfirm, …}), or a Koala message as the
// page's onMessage gets it (Message_t: {id, meta: {realm, seq, sender, stime}, title, content, props,
// expiresAt}, with truncated: true when its content was cut to fit).
'use strict';

self.addEventListener('push', function (event) {
  var message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (error) {
    message = { alert: event.data ? event.data.text() : '' };
  }
  // Chrome takes userVisibleOnly subscriptions only: every push shows something (CMD quietly).
  var koala = typeof message.meta === 'object' && message.meta !== null;
  event.waitUntil(
    self.registration.showNotification(koala ? message.title : message.tenantCode || 'herald', {
      body: (koala ? message.content : message.alert) || '',
      // One notification per message: a repeat (a retry, the socket's copy) replaces it.
      tag: koala ? message.id : message.messageId,
      silent: message.pushMsgType === 'CMD',
      data: message,
    }),
  );
});

self.addEventListener('notificationclick', function (event) {
  event.notification.close();
  event.waitUntil(self.clients.openWindow('/demo/terminal.html'));
});
