// The serial a guest reads with VIRTIO_BLK_T_GET_ID (20 bytes at most), one function per kind
// of disk. Each is stable across restarts for the same medium, so a guest's by-id links and
// udev rules keep finding its disk.
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { HostDeviceFacts } from './host-device-probe.js';

const PREFIX = 'vuzbd-';

/** The prefix and 14 hex digits of a hash of what identifies the medium (20 characters). */
function hashedSerial(identity: string): string {
  return PREFIX + createHash('sha1').update(identity).digest('hex').slice(0, 14);
}

/** An emulated image: from the UUID written into its header at create. */
export function imageSerial(uuid: Uint8Array): string {
  return PREFIX + Buffer.from(uuid.subarray(0, 7)).toString('hex');
}

/** A raw file or block device served as a regular disk: from its path and inode. */
export function rawFileSerial(file: string, ino: number): string {
  return hashedSerial(`${path.resolve(file)}:${ino}`);
}

/** A host zoned drive: from the medium's identity (wwid or serial), else its node, numbers and size. */
export function hostDeviceSerial(f: Pick<HostDeviceFacts, 'identity' | 'path' | 'major' | 'minor' | 'capacitySectors'>): string {
  return hashedSerial(f.identity ?? `${path.resolve(f.path)}:${f.major}:${f.minor}:${f.capacitySectors}`);
}

/** A RAM disk (zoned or not) has nothing lasting to derive from: every one has this serial unless given one. */
export const MEMORY_SERIAL = PREFIX + 'memory';
