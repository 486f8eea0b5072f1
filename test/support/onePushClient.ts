/**
 * ONE-PUSH's HTTP API as a legacy client calls it (shared/seeds/003_834cb051d61fc48e.txt): register a
 * device, send the seed's message (iOS fields and all) — for the platform-push specs, whose herald may
 * restart on another port (`urlOf` is asked each call).
 */
export function onePushClient(urlOf: () => string) {
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${urlOf()}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, string> };
  };
  return {
    /** Registers a device of app `camel` unless told; answers its id. */
    register: async (nativeToken: string, alias: string, platform: string, appId = 'camel') =>
      (await post('/msgpush/register', { alias, appId, platform, nativeToken })).body.id!,
    /** The seed's send to `audiences` (aliases) of app `camel` unless told; answers its requestId. */
    send: async (audiences: string[], extra: Record<string, unknown> = {}, app = ['camel', 'EERWERRRRE']) =>
      (
        await post('/msgpush/send', {
          appId: app[0],
          appKey: app[1],
          tenantCode: 'xxx',
          platform: 'ALL',
          pushMsgType: 'MSG',
          needConfirm: false,
          duration: 10000,
          audienceType: 'ALIAS',
          audiences,
          extra: 'testmsg',
          alert: ' this is a alert',
          sound: 'default',
          badge: 1,
          ...extra,
        })
      ).body.requestId!,
  };
}
