import { VERSION } from '../version.js';
import type { ApiKit, Resource } from './kit.js';

/** GET /api/v1/versions: SRS's major/minor/revision split of our version. */
export function versions(kit: ApiKit): Resource {
  return {
    name: 'versions',
    about: 'the version of streamgate',
    get: () => {
      const [major, minor, revision] = VERSION.split('.').map((x) => Number.parseInt(x, 10) || 0);
      return kit.envelope({ data: { major, minor, revision, version: VERSION } });
    },
  };
}
