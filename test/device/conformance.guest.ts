// The zone conformance suite of the emulations (test/conformance/emulated.test.ts), here on the
// host device backend over real kernel zoned devices with the same geometries.
import { describe, expect, it } from 'vitest';
import { HostDeviceBackend } from '../../src/backends/host-device-backend.js';
import { NULLB_GEOMETRY, SCSI_DEBUG_GEOMETRY } from '../conformance/geometries.js';
import { zoneConformanceSuite } from '../conformance/zone-suite.js';
import { findGuestDevices } from './devices.js';

const devs = findGuestDevices();

describe('the guest devices have the geometry the emulated runs of the suite use', () => {
  for (const [dev, geo] of [[devs.nullb, NULLB_GEOMETRY], [devs.scsi, SCSI_DEBUG_GEOMETRY]] as const) {
    it(dev, async () => {
      const b = HostDeviceBackend.open(dev, { readOnly: true, exclusive: false });
      try {
        expect({ capacitySectors: b.info.capacitySectors, blockSize: b.info.blockSize, ...b.info.zoned }).toEqual({
          capacitySectors: geo.capacitySectors, blockSize: geo.blockSize, zoneSectors: geo.zoneSectors,
          zoneCapacitySectors: geo.zoneCapacitySectors, nrZones: Math.ceil(geo.capacitySectors / geo.zoneSectors),
          conventionalZones: geo.conventionalZones, maxOpenZones: geo.maxOpenZones, maxActiveZones: geo.maxActiveZones,
          maxAppendSectors: geo.maxAppendSectors,
        });
      } finally {
        await b.close();
      }
    });
  }
});

zoneConformanceSuite({ name: `host device: null_blk ${devs.nullb}`, open: () => HostDeviceBackend.open(devs.nullb) });
zoneConformanceSuite({
  name: `host device: scsi_debug ZBC ${devs.scsi}`,
  open: () => HostDeviceBackend.open(devs.scsi),
  quirks: { finishEmptyUncounted: true },
});
