// herald's demo service worker (docs/platform-push.md, "Web Push"): shows each message herald pushes to
// this browser while its page is closed. The payload is the ONE-PUSH frame's fields as JSON
// ({messageId, appId, tenantCode, alert, extra, pushMsgType, needConfirm, …}).
'use strict';

self.addEventListener('push', function (event) {
  var message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (error) {
    message = { alert: event.data ? event.data.text() : '' };
  }
  // Chrome takes userVisibleOnly subscriptions only: every push shows something (CMD quietly).
  event.waitUntil(
    self.registration.showNotification(message.tenantCode || 'herald', {
      body: message.alert || '',
      // One notification per message: a repeat (a retry, the socket's copy) replaces it.
      tag: message.messageId,
      silent: message.pushMsgType === 'CMD',
      data: message,
    }),
  );
});

self.addEventListener('notificationclick', function (event) {
  event.notification.close();
  event.waitUntil(self.clients.openWindow('/demo/terminal.html'));
});
