import fs from 'node:fs';
import path from 'node:path';

/**
 * The real descriptors in ../shared/fixtures/ovf, read in place. VMHUB_FIXTURES overrides where they are;
 * when the folder is absent the fixture suite is excluded, and says so in one line.
 */
export const FIXTURES = process.env.VMHUB_FIXTURES ?? path.resolve(__dirname, '../../../shared/fixtures/ovf');
export const HAVE_FIXTURES = fs.existsSync(FIXTURES);

export function fixture(name: string): string {
  return fs.readFileSync(path.join(FIXTURES, name), 'utf8');
}

export function describeWithFixtures(name: string, fn: () => void): void {
  if (HAVE_FIXTURES) describe(name, fn);
  else
    test(`${name}: fixtures folder ${FIXTURES} is absent, suite excluded`, () => {
      expect(fs.existsSync(FIXTURES)).toBe(false);
    });
}
