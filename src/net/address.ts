/**
 * A client's address as logs, hooks, the API and X-Forwarded-For show it: an IPv4 client of a
 * dual-stack listener (Node's default `::`) without the IPv4-mapped prefix, as SRS shows it and
 * as NGINX logs it on an IPv4 listener. '' when the socket has none (closed).
 */
export function clientIp(addr: string | undefined): string {
  if (!addr) return '';
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

/** The client as an access log line names it: its address, or '-' as NGINX writes a missing field. */
export function logAddress(addr: string | undefined): string {
  return clientIp(addr) || '-';
}
