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
