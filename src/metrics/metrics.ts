/**
 * Counters for /metrics in Prometheus' text exposition format (version 0.0.4). Plain maps and
 * numbers: incrementing must cost nothing next to serving the request it counts.
 */
export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly bytes = new Map<string, number>();
  private readonly upstreamErrors = new Map<string, number>();
  /** Extra gauges read at scrape time (connections, streams, players). */
  private readonly gauges = new Map<string, { help: string; read: () => number }>();

  request(route: string, status: number, bytes: number): void {
    const key = `route="${route}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    const bkey = `route="${route}"`;
    this.bytes.set(bkey, (this.bytes.get(bkey) ?? 0) + bytes);
  }

  upstreamError(upstream: string, kind: string): void {
    const key = `upstream="${escapeLabel(upstream)}",kind="${kind}"`;
    this.upstreamErrors.set(key, (this.upstreamErrors.get(key) ?? 0) + 1);
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
    family('streamgate_http_requests_total', 'HTTP requests by route and status.', 'counter', this.requests);
    family('streamgate_http_response_bytes_total', 'Bytes sent in HTTP responses, by route.', 'counter', this.bytes);
    family('streamgate_upstream_errors_total', 'Proxy upstream failures by upstream and kind.', 'counter', this.upstreamErrors);
    for (const [name, g] of this.gauges) {
      out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.read()}`);
    }
    return `${out.join('\n')}\n`;
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
