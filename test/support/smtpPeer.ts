import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** A message the peer took: the SMTP envelope, and the message as mailparser decodes it. */
export interface ReceivedEmail {
  readonly envelope: { from: string; to: string[] };
  /**
   * Parsed with neither text → html nor html → text conversion, so a text/plain message has `text`
   * and `html: false`, a text/html one has `html` and `text: ''`: each shows only what was sent.
   */
  readonly message: ParsedMail;
  /**
   * The content as the sender gave it: the message's `html`, or else its `text`, less one final line
   * break. A message ends on CRLF (RFC 5322), which mailparser keeps in a quoted-printable or 7bit body
   * (as `\n`: it turns every CRLF into LF) and a base64 one never had.
   */
  readonly body: string;
}

export interface SmtpPeer {
  readonly port: number;
  /** Each message the server took, in the order it took them. */
  readonly received: readonly ReceivedEmail[];
  /** RCPT TO commands seen, refused ones included. */
  readonly rcptAttempts: number;
  /** While true, every recipient is refused with 450 (a temporary failure). */
  refuse: boolean;
  close(): Promise<void>;
}

/** A real SMTP server on an ephemeral port (or the given one), without TLS, with PLAIN/LOGIN auth when a user is given. */
export async function startSmtpPeer(
  options: { user?: string; password?: string; port?: number } = {},
): Promise<SmtpPeer> {
  let rcptAttempts = 0;
  const received: ReceivedEmail[] = [];
  const peer = {
    refuse: false,
    received,
    get rcptAttempts() {
      return rcptAttempts;
    },
  };
  const server = new SMTPServer({
    logger: false,
    disabledCommands: ['STARTTLS'],
    authOptional: options.user === undefined,
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      // Without a user of its own, the peer lets any login in (the mailers' URLs all carry one).
      if (options.user === undefined || (auth.username === options.user && auth.password === options.password))
        callback(null, { user: auth.username });
      else callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(_address, _session, callback) {
      rcptAttempts++;
      callback(peer.refuse ? Object.assign(new Error('mailbox busy, try again later'), { responseCode: 450 }) : null);
    },
    onData(stream, session, callback) {
      const envelope = {
        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        to: session.envelope.rcptTo.map((a) => a.address),
      };
      // Recorded before the server answers 250, so a sender whose send has resolved finds its message here.
      simpleParser(stream, { skipHtmlToText: true, skipTextToHtml: true }).then(
        (message) => {
          const content = typeof message.html === 'string' ? message.html : (message.text ?? '');
          received.push({ envelope, message, body: content.replace(/\n$/, '') });
          callback(null);
        },
        (error: Error) => callback(error),
      );
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;
  return Object.assign(peer, { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
}
