// The zoned-disk guest suite (zoned-suite.ts) on QEMU >= 10.2 under TCG, the disk attached as
// vhost-user-test-device-pci,virtio-id=2,config_size=96 (vhost-user-blk-pci strips the zoned
// feature in every release). The QEMU is $ZONED_QEMU or what qemu-scripts/get-qemu.sh fetches
// from Debian (trixie-backports); the suite logs which version ran. It fails, never skips,
// when no such QEMU can be had. A separate file from the UML run so vitest can run the two
// side by side.
import { qemuZonedFrontend } from './harness.js';
import { zonedGuestSuite } from './zoned-suite.js';

zonedGuestSuite(qemuZonedFrontend);
