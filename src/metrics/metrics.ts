/**
 * Counters for /metrics in Prometheus' text exposition format (version 0.0.4). Plain maps and
 * numbers: incrementing must cost nothing next to serving the request it counts.
 */
export class Metrics {
  /** route → status → count: no label string is built per request. */
  private readonly requests = new Map<string, Map<number, number>>();
  private readonly bytes = new Map<string, number>();
  private readonly upstreamErrors = new Map<string, number>();
  /** Counters without labels, by name (the proxy lane's requests, connects and retries). */
  private readonly counters = new Map<string, { help: string; n: number }>();
  /** Extra gauges read at scrape time (connections, streams, players). */
  private readonly gauges = new Map<string, { help: string; read: () => number }>();
  private readonly counterFns = new Map<string, { help: string; read: () => number }>();
  /** Response bytes sent by the sendfile addon. */
  private sendfileBytes = 0;

  request(route: string, status: number, bytes: number): void {
    let byStatus = this.requests.get(route);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.requests.set(route, byStatus);
    }
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    this.bytes.set(route, (this.bytes.get(route) ?? 0) + bytes);
  }

  /** Response bytes that went out by sendfile(2) (the native addon in use). */
  sendfile(bytes: number): void {
    this.sendfileBytes += bytes;
  }

  get sendfileBytesTotal(): number {
    return this.sendfileBytes;
  }

  upstreamError(upstream: string, kind: string): void {
    const key = `upstream="${escapeLabel(upstream)}",kind="${kind}"`;
    this.upstreamErrors.set(key, (this.upstreamErrors.get(key) ?? 0) + 1);
  }

  count(name: string, help: string): void {
    const c = this.counters.get(name);
    if (c === undefined) this.counters.set(name, { help, n: 1 });
    else c.n++;
  }

  /** A counter kept elsewhere, read when /metrics is rendered. */
  counterFn(name: string, help: string, read: () => number): void {
    this.counterFns.set(name, { help, read });
  }

  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, { help, read });
  }

  render(): string {
    const out: string[] = [];
    const family = (name: string, help: string, type: string, rows: Map<string, number>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of rows) out.push(`${name}{${labels}} ${v}`);
    };
    const requests = new Map<string, number>();
    for (const [route, byStatus] of this.requests) for (const [status, n] of byStatus) requests.set(`route="${route}",status="${status}"`, n);
    family('streamgate_http_requests_total', 'HTTP requests by route and status.', 'counter', requests);
    family('streamgate_http_response_bytes_total', 'Bytes sent in HTTP responses, by route.', 'counter', new Map([...this.bytes].map(([route, n]) => [`route="${route}"`, n])));
    out.push('# HELP streamgate_sendfile_bytes_total Response bytes sent with send/sendfile(2) by the native addon (0: not built, or off).',
      '# TYPE streamgate_sendfile_bytes_total counter', `streamgate_sendfile_bytes_total ${this.sendfileBytes}`);
    family('streamgate_upstream_errors_total', 'Proxy upstream failures by upstream and kind.', 'counter', this.upstreamErrors);
    for (const [name, c] of this.counters) out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`, `${name} ${c.n}`);
    for (const [name, c] of this.counterFns) out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`, `${name} ${c.read()}`);
    for (const [name, g] of this.gauges) {
      out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.read()}`);
    }
    return `${out.join('\n')}\n`;
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
