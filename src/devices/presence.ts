import type { Directory } from '../nodes/directory';

/**
 * Which devices are connected: to this node (whose due attempts it makes), or to any node (whether a
 * device is online at all: GraphQL's `online`, a ONE-PUSH send's SMS fallback). Across nodes it asks the
 * directory (src/nodes/directory.ts), which every node tells of its connections.
 */
export interface Presence {
  /** The device has a connection (legacy socket or GraphQL subscription) to some node. */
  isOnline(deviceId: string): Promise<boolean>;
  /** Which of these devices have a connection to some node (one round trip). */
  onlineAmong(deviceIds: readonly string[]): Promise<ReadonlySet<string>>;
  /** Devices with a connection to this node: whose due attempts this node makes. */
  localDevices(): readonly string[];
}

const PREFIX = 'device:';
const keyOf = (deviceId: string) => `${PREFIX}${deviceId}`;

/** Tells the directory of this node's device connections (a socket and a subscription: online until both close), and asks it. */
export class DevicePresence implements Presence {
  constructor(private readonly directory: Directory) {}

  add(deviceId: string): void {
    // A device may hold connections to several nodes (a socket and a subscription): none replaces another.
    void this.directory.add(keyOf(deviceId));
  }

  remove(deviceId: string): void {
    this.directory.remove(keyOf(deviceId));
  }

  async isOnline(deviceId: string): Promise<boolean> {
    return (await this.directory.holder(keyOf(deviceId))) !== undefined;
  }

  async onlineAmong(deviceIds: readonly string[]): Promise<ReadonlySet<string>> {
    const held = await this.directory.held(deviceIds.map(keyOf));
    return new Set(deviceIds.filter((deviceId) => held.has(keyOf(deviceId))));
  }

  localDevices(): readonly string[] {
    return this.directory.keysHere().flatMap((key) => (key.startsWith(PREFIX) ? [key.slice(PREFIX.length)] : []));
  }
}

/**
 * Which users have a live Koala terminal: a GraphQL `messages` subscription (the SDK's message_client),
 * on any node, through the same directory. A Koala message to a user with none goes to the user's
 * subscribed browsers through Web Push (src/platformPush/koalaWebPushes.ts). A user may hold several (tabs,
 * nodes): online until every one has ended.
 */
export class TerminalPresence {
  constructor(private readonly directory: Directory) {}

  add(appId: string, userId: string): void {
    void this.directory.add(terminalDirectoryKey(appId, userId));
  }

  remove(appId: string, userId: string): void {
    this.directory.remove(terminalDirectoryKey(appId, userId));
  }

  /** The users of `appId` among `userIds` with a live terminal on some node (one round trip). */
  async onlineAmong(appId: string, userIds: readonly string[]): Promise<ReadonlySet<string>> {
    const held = await this.directory.held(userIds.map((userId) => terminalDirectoryKey(appId, userId)));
    return new Set(userIds.filter((userId) => held.has(terminalDirectoryKey(appId, userId))));
  }
}

// Apart from the devices' keys (`device:`); the app id's length first, so no app and user pair reads as another.
const terminalDirectoryKey = (appId: string, userId: string) => `terminal:${appId.length}:${appId}:${userId}`;
