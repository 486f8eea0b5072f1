import * as t from 'io-ts';
import { APP_KEEP_RULE, appStreamName } from '../../domain/app/app';
import { DomainError } from '../../domain/decider';
import {
  APP_RETENTION_CATEGORIES,
  formatKeep,
  type AppRetentionCategory,
  type RetentionPolicy,
} from '../../domain/retention';
import { appAggregate } from '../command/aggregates';
import { handleCommand } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import type { AppRetentions } from './retention';

/** One category as the app's admin sees it: the app's own setting (null: the deployment's), and what applies. */
export interface RetentionSettingView {
  readonly app: string | null;
  readonly effective: string;
}
export type AppRetentionView = Readonly<Record<AppRetentionCategory, RetentionSettingView>>;

/** Longer than any accepted value (`36500d`, `forever`, `default`): a longer one is refused unread. */
const MAX_VALUE_LENGTH = 16;

/**
 * GraphQL `setRetention`'s input: each category optional (absent or null: unchanged); the value is
 * checked by the app's decider (domain/app/app.ts).
 */
const RetentionInput = t.exact(
  t.partial(
    Object.fromEntries(APP_RETENTION_CATEGORIES.map((c) => [c, t.union([t.string, t.null, t.undefined])])) as Record<
      AppRetentionCategory,
      t.UnionC<[t.StringC, t.NullC, t.UndefinedC]>
    >,
  ),
);

/**
 * How long an app keeps its records that never end (issue 26: a Koala message with `expire` 0 is kept
 * "while the app wants it"): set by the app's admin (GraphQL `setRetention`, an `AppRetentionSet` on the
 * app's stream), shown with what applies; the leader's pruning pass reads the apps read model.
 */
export class AppRetentionSettings {
  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly retentions: AppRetentions;
      /** The deployment's defaults (HERALD_RETENTION_UNEXPIRING_MESSAGES, …_DATAHUB_NOTIFICATIONS). */
      readonly policy: RetentionPolicy;
      /** Resolves once the apps read model shows a change at this position. */
      readonly appsShow: (position: bigint | undefined) => Promise<void>;
    },
  ) {}

  /** `actor`: who sets it (the admin's `user:<id>`, in the event's metadata). */
  async set(appId: string, actor: string, input: unknown, now: Date): Promise<AppRetentionView> {
    const decoded = RetentionInput.decode(input);
    if (decoded._tag === 'Left') throw new DomainError('invalid', 'input: expected strings or null');
    const changes: Partial<Record<AppRetentionCategory, string>> = {};
    for (const category of APP_RETENTION_CATEGORIES) {
      const value = decoded.right[category];
      if (value === undefined || value === null) continue;
      if (value.length > MAX_VALUE_LENGTH) throw new DomainError('invalid', `${category}: ${APP_KEEP_RULE}`);
      changes[category] = value;
    }
    const result = await handleCommand(
      this.deps.store,
      appAggregate,
      appStreamName(appId),
      { type: 'SetRetention', appId, changes, now: now.toISOString() },
      { appId, actor },
    );
    await this.deps.appsShow(result.position);
    return this.view(appId);
  }

  async view(appId: string): Promise<AppRetentionView> {
    const app = await this.deps.retentions.of(appId);
    return Object.fromEntries(
      APP_RETENTION_CATEGORIES.map((c) => {
        const own = app[c];
        return [
          c,
          { app: own === undefined ? null : formatKeep(own), effective: formatKeep(own ?? this.deps.policy[c]) },
        ];
      }),
    ) as AppRetentionView;
  }
}
