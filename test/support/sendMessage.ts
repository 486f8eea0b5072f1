import { expect } from 'chai';
import { MAX_MUTATION_FIELDS } from '../../api/graphql/operationChecks';
import { graphql } from './graphqlClient';

export interface MessageToSend {
  readonly to: readonly string[];
  readonly title: string;
  readonly content: string;
  /** Seconds until it expires; absent or 0: never. */
  readonly expire?: number;
}

/** Sends a Koala message as a frontend does (GraphQL sendMessage with the sender's ticket); answers its id. */
export async function sendMessage(baseUrl: string, senderTicket: string, message: MessageToSend): Promise<string> {
  const { data, errors } = await graphql<{ sendMessage: { id: string } }>(
    baseUrl,
    senderTicket,
    'mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }',
    { input: message },
  );
  expect(errors, `sendMessage ${message.title}`).to.equal(undefined);
  return data!.sendMessage.id;
}

/**
 * Sends `messages` in order from one sender, as many to a GraphQL operation as herald runs in one
 * (MAX_MUTATION_FIELDS; a mutation operation's fields run one after the other); answers their ids.
 */
export async function sendMessages(
  baseUrl: string,
  senderTicket: string,
  messages: readonly MessageToSend[],
): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < messages.length; start += MAX_MUTATION_FIELDS) {
    const batch = messages.slice(start, start + MAX_MUTATION_FIELDS);
    const { data, errors } = await graphql<Record<string, { id: string }>>(
      baseUrl,
      senderTicket,
      `mutation(${batch.map((_, i) => `$m${i}: SendMessageInput!`).join(', ')}) {
        ${batch.map((_, i) => `m${i}: sendMessage(input: $m${i}) { id }`).join('\n')}
      }`,
      Object.fromEntries(batch.map((message, i) => [`m${i}`, message])),
    );
    expect(errors, `sendMessage ${batch[0]!.title} …`).to.equal(undefined);
    ids.push(...batch.map((_, i) => data![`m${i}`]!.id));
  }
  return ids;
}
