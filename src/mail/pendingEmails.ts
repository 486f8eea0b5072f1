/** An email as the read model shows it (implemented by projections/emails.ts). Its content is not kept there. */
export interface EmailStatus {
  readonly emailId: string;
  readonly appId: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly isHtml: boolean;
  /** `failed` is final: every attempt failed. An email whose attempts failed with tries left is `pending`. */
  readonly status: 'pending' | 'sent' | 'failed';
  /** Attempts whose outcome is recorded. */
  readonly attempts: number;
  /** When the mailer tries next; undefined once sent or failed. */
  readonly nextAttemptAt?: Date;
  readonly lastError?: string;
  readonly messageId?: string;
  readonly requestedAt: Date;
  readonly sentAt?: Date;
  readonly updatedAt: Date;
}

/** What the mailer and the Emails service read of the emails read model. */
export interface PendingEmails {
  /** Pending emails whose next attempt is due at `now`, earliest first. */
  due(now: Date, limit: number): Promise<Array<{ emailId: string; appId: string }>>;
  /** When the earliest pending email is due, if any is pending. */
  nextAttemptAt(): Promise<Date | undefined>;
  byId(emailId: string): Promise<EmailStatus | undefined>;
}
