/** Programs the benchmark runs; the smoke test skips when one is missing. */
export const REQUIRED_TOOLS = ['nginx', 'caddy', 'wrk', 'h2load', 'ffmpeg', 'taskset'];
