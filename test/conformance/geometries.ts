// The kernel zoned devices of the guest tests and the emulated geometries that mirror them,
// so the conformance suite runs on the same geometry in memory, in an image file and on the
// real device. test/device checks inside the guest that the devices match these numbers.
import type { GeometryInput } from '../../src/zoned/geometry.js';

/**
 * null_blk: 1 GiB, 8 MiB zones with 6 MiB capacity, 4 conventional zones, 4K blocks,
 * at most 6 open and 10 active zones, data kept in RAM.
 */
export const NULLB_PARAMS = [
  'null_blk.nr_devices=1', 'null_blk.zoned=1', 'null_blk.gb=1', 'null_blk.bs=4096', 'null_blk.zone_size=8',
  'null_blk.zone_capacity=6', 'null_blk.zone_nr_conv=4', 'null_blk.zone_max_open=6', 'null_blk.zone_max_active=10',
  'null_blk.memory_backed=1',
];

export const NULLB_GEOMETRY: Required<GeometryInput> = {
  capacitySectors: 2097152,
  zoneSectors: 16384,
  zoneCapacitySectors: 12288,
  conventionalZones: 4,
  blockSize: 4096,
  maxOpenZones: 6,
  maxActiveZones: 10,
  // null_blk advertises zone_append_max_bytes = 130560 (255 sectors): 248 in whole 4K blocks.
  maxAppendSectors: 248,
};

/**
 * scsi_debug as a host-managed ZBC disk: 64 MiB, 4 MiB zones, 2 conventional zones, 512-byte
 * blocks, at most 4 open zones (ZBC has no active limit). delay=0 answers at once (the
 * default 1-jiffy delay would make every command take 10 ms in UML).
 */
export const SCSI_DEBUG_PARAMS = [
  'scsi_debug.add_host=1', 'scsi_debug.zbc=managed', 'scsi_debug.dev_size_mb=64', 'scsi_debug.zone_size_mb=4',
  'scsi_debug.zone_nr_conv=2', 'scsi_debug.zone_max_open=4', 'scsi_debug.delay=0',
];

export const SCSI_DEBUG_GEOMETRY: Required<GeometryInput> = {
  capacitySectors: 131072,
  zoneSectors: 8192,
  zoneCapacitySectors: 8192,
  conventionalZones: 2,
  blockSize: 512,
  maxOpenZones: 4,
  maxActiveZones: 0,
  // scsi_debug advertises 8 MiB, more than a zone: a zone's capacity is the useful limit.
  maxAppendSectors: 8192,
};

/** Kernel command line for a guest with both devices. */
export const GUEST_DEVICE_KERNEL_ARGS = [...NULLB_PARAMS, ...SCSI_DEBUG_PARAMS].join(' ');
