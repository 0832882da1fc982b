// The zone conformance suite on the emulations, with the geometries of the kernel devices the
// same suite runs on inside the guest (test/device/conformance.guest.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createImage, openImage } from '../../src/backends/image-file.js';
import { createMemoryBackend } from '../../src/backends/memory-backend.js';
import { NULLB_GEOMETRY, SCSI_DEBUG_GEOMETRY } from './geometries.js';
import { zoneConformanceSuite } from './zone-suite.js';

zoneConformanceSuite({ name: 'memory backend, null_blk geometry', open: () => createMemoryBackend(NULLB_GEOMETRY) });
zoneConformanceSuite({ name: 'memory backend, scsi_debug geometry', open: () => createMemoryBackend(SCSI_DEBUG_GEOMETRY) });

let dir = '';
zoneConformanceSuite({
  name: 'file backend (image), null_blk geometry',
  open: () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-conformance-'));
    const img = path.join(dir, 'disk.img');
    createImage(img, { ...NULLB_GEOMETRY });
    return openImage(img).backend;
  },
  cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
});
