import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy in front of herald, so a test can do to a client's socket what a network or a restart
 * does: `cut()` resets every connection and refuses new ones until `restore()`; `freeze()` stops
 * forwarding on the open ones without closing them, as a dead path does (only a heartbeat notices).
 */
export class TcpProxy {
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private refusing = false;

  private constructor(
    private readonly server: net.Server,
    readonly url: string,
  ) {}

  static async start(targetUrl: string): Promise<TcpProxy> {
    const target = new URL(targetUrl);
    let proxy: TcpProxy | undefined;
    const server = net.createServer((client) => proxy!.accept(client, target));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    proxy = new TcpProxy(server, `http://127.0.0.1:${port}`);
    return proxy;
  }

  /** `databaseUrl` through this proxy: its port, and TCP even where the URL names a Unix socket (`host`). */
  databaseUrl(databaseUrl: string): string {
    const proxied = new URL(databaseUrl);
    proxied.port = new URL(this.url).port;
    proxied.searchParams.delete('host');
    return proxied.toString();
  }

  /** Connections open now (frozen ones included). */
  get connections(): number {
    return this.pairs.size;
  }

  cut(): void {
    this.refusing = true;
    for (const pair of this.pairs) this.drop(pair);
  }

  restore(): void {
    this.refusing = false;
  }

  /** The open connections stop carrying bytes either way, and stay open. New ones work. */
  freeze(): void {
    for (const { client, upstream } of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) this.drop(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket, target: URL): void {
    if (this.refusing) return void client.resetAndDestroy();
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = { client, upstream };
    this.pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => this.drop(pair);
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
  }

  private drop(pair: { client: net.Socket; upstream: net.Socket }): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.resetAndDestroy();
    pair.upstream.destroy();
  }
}
