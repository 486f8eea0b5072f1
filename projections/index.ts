import type { Projection } from '../src/projection/projection';
import { appsProjection } from './apps';
import { datahubProjection } from './datahubNotifications';
import { devicesProjection } from './devices';
import { emailsProjection } from './emails';
import { notificationsProjection } from './koalaInbox';
import { rtioProjection } from './rtioReports';
import { whitelistProjection } from './whitelist';

/** Every read model herald keeps; the composition root runs one runner for each. */
export const projections: readonly Projection[] = [
  appsProjection,
  notificationsProjection,
  datahubProjection,
  emailsProjection,
  devicesProjection,
  rtioProjection,
  whitelistProjection,
];
