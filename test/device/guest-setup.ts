// Refuses to run the device tests anywhere but inside the UML test guest: they reset,
// fill and reconfigure block devices as root, which must never happen on a real host.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findGuestDevices } from './devices.js';

export default function setup(): void {
  if (process.env.VUZBD_IN_GUEST !== '1') {
    throw new Error('test/device runs only inside the UML guest (VUZBD_IN_GUEST=1): run `npx vitest run test/guest/device-backend.test.ts` on the host');
  }
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  if (!fs.existsSync(path.join(root, 'dist/cli/main.js'))) throw new Error('dist/ is not built: the host run builds it (tsc -p tsconfig.json)');
  // Throws with what is missing: the guest must have been booted with both devices.
  findGuestDevices();
}
