// struct virtio_blk_config (96 bytes, little-endian), built from the backend's description.
import type { BackendInfo } from '../backends/backend.js';
import { CONFIG_SIZE, ZONED_MODEL } from './constants.js';
import type { SegmentLimits } from './request.js';

export interface ConfigParams {
  info: BackendInfo;
  numQueues: number;
  /** Max data segments per request (seg_max). */
  segMax: number;
  /** Writeback cache enabled (driver-writable via CONFIG_WCE). */
  writeback: boolean;
  /** Fill the zoned block (false when serving a regular disk). */
  zoned: boolean;
  /** DISCARD offered: its limits (alignment = the logical block). */
  discard: SegmentLimits | null;
  /** WRITE_ZEROES offered: its limits; mayUnmap when a zeroed range can lose its space. */
  writeZeroes: (SegmentLimits & { mayUnmap: boolean }) | null;
}

export const CONFIG_WRITEBACK_OFFSET = 32;

export function buildConfig(p: ConfigParams): Uint8Array {
  const buf = new Uint8Array(CONFIG_SIZE);
  const dv = new DataView(buf.buffer);
  const i = p.info;
  dv.setBigUint64(0, BigInt(i.capacitySectors), true);
  dv.setUint32(8, 0, true);                         // size_max: SIZE_MAX not offered
  dv.setUint32(12, p.segMax, true);
  dv.setUint32(20, i.blockSize, true);              // blk_size
  dv.setUint8(24, Math.log2(i.physicalBlockSize / i.blockSize)); // physical_block_exp
  dv.setUint8(25, 0);                               // alignment_offset
  dv.setUint16(26, 1, true);                        // min_io_size (logical blocks)
  dv.setUint32(28, 0, true);                        // opt_io_size
  dv.setUint8(CONFIG_WRITEBACK_OFFSET, p.writeback ? 1 : 0);
  dv.setUint16(34, p.numQueues, true);
  if (p.discard) {
    dv.setUint32(36, p.discard.maxSectors, true);
    dv.setUint32(40, p.discard.maxSegments, true);
    dv.setUint32(44, i.blockSize / 512, true);      // discard_sector_alignment (Linux: discard granularity)
  }
  if (p.writeZeroes) {
    dv.setUint32(48, p.writeZeroes.maxSectors, true);
    dv.setUint32(52, p.writeZeroes.maxSegments, true);
    dv.setUint8(56, p.writeZeroes.mayUnmap ? 1 : 0);
  }
  const z = i.zoned;
  if (p.zoned && z) {
    dv.setUint32(72, z.zoneSectors, true);
    dv.setUint32(76, z.maxOpenZones, true);
    dv.setUint32(80, z.maxActiveZones, true);
    dv.setUint32(84, z.maxAppendSectors, true);
    dv.setUint32(88, i.blockSize, true);            // write_granularity is in bytes
    dv.setUint8(92, ZONED_MODEL.HM);
  }
  return buf;
}
