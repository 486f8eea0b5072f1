import { expect } from 'chai';
import { graphql } from './graphqlClient';

/**
 * Whether the device `deviceId` (registered under `alias`) is connected, as GraphQL `devices` shows it
 * to an admin of its app (`adminTicket`: a ticket with role admin).
 */
export async function isDeviceOnline(
  baseUrl: string,
  adminTicket: string,
  alias: string,
  deviceId: string,
): Promise<boolean> {
  const { data, errors } = await graphql<{ devices: { nodes: Array<{ id: string; online: boolean }> } }>(
    baseUrl,
    adminTicket,
    'query($alias: String) { devices(alias: $alias, first: 100) { nodes { id online } } }',
    { alias },
  );
  expect(errors, 'the devices query').to.equal(undefined);
  const device = data!.devices.nodes.find((node) => node.id === deviceId);
  expect(device, `device ${deviceId} with alias ${alias}`).not.to.equal(undefined);
  return device!.online;
}

/** A registered device as GraphQL `devices` lists it. */
export interface ListedDevice {
  id: string;
  clientId: number;
  alias: string;
  platform: string;
  mobile: string | null;
  tags: string[];
}

const DEVICES = `query($after: String) {
  devices(first: 100, after: $after) { nodes { id clientId alias platform mobile tags } pageInfo { endCursor hasNextPage } }
}`;
type DevicesPage = { devices: { nodes: ListedDevice[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } } };

/**
 * The device `deviceId` as GraphQL `devices` lists it to an admin of its app, page by page; undefined when
 * it is not listed: never registered in that app, or unregistered.
 */
export async function listedDevice(
  baseUrl: string,
  adminTicket: string,
  deviceId: string,
): Promise<ListedDevice | undefined> {
  for (let after: string | undefined; ;) {
    const { data, errors } = await graphql<DevicesPage>(baseUrl, adminTicket, DEVICES, { ...(after && { after }) });
    expect(errors, 'the devices query').to.equal(undefined);
    const device = data!.devices.nodes.find((node) => node.id === deviceId);
    const { endCursor, hasNextPage } = data!.devices.pageInfo;
    if (device || !hasNextPage || endCursor === null) return device;
    after = endCursor;
  }
}
