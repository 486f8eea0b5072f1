/**
 * Events in the shapes history holds them, for the versioning tests: what herald stored before a change,
 * with no `schemaVersion` in the metadata (version 1).
 */

/** NotificationSent version 1: no `forBrowser` (the notification was in the browser's list unless the client's). */
export const notificationSentV1 = {
  notificationId: 'n1',
  appId: 'camel',
  notificationType: 'private_message',
  sender: 'alice',
  receivers: ['bob'],
  level: 0,
  forClient: false,
  data: { text: 'hi' },
  sentAt: '2026-01-01T00:00:00.000Z',
} as const;
