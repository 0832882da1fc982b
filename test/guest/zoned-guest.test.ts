// The zoned-disk guest suite (zoned-suite.ts) on User-Mode Linux 6.12: virtio_uml passes the
// daemon's feature bits to the guest unfiltered, so its virtio_blk sees the zoned disk.
import { umlFrontend } from './harness.js';
import { zonedGuestSuite } from './zoned-suite.js';

zonedGuestSuite(umlFrontend);
