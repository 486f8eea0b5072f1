/**
 * Which devices are connected. In memory here, for one node: the scale-out issue backs the same
 * interface with Redis, so a send can tell connected devices anywhere from offline ones.
 */
export interface Presence {
  /** The device has a connection (legacy socket or GraphQL subscription). */
  isOnline(deviceId: string): boolean;
  /** Devices with a connection to this node: whose due attempts this node makes. */
  localDevices(): readonly string[];
}

/** Counts connections per device: a device with a socket and a subscription stays online until both close. */
export class InMemoryPresence implements Presence {
  private readonly connections = new Map<string, number>();

  add(deviceId: string): void {
    this.connections.set(deviceId, (this.connections.get(deviceId) ?? 0) + 1);
  }

  remove(deviceId: string): void {
    const left = (this.connections.get(deviceId) ?? 0) - 1;
    if (left > 0) this.connections.set(deviceId, left);
    else this.connections.delete(deviceId);
  }

  isOnline(deviceId: string): boolean {
    return this.connections.has(deviceId);
  }

  localDevices(): readonly string[] {
    return [...this.connections.keys()];
  }
}
