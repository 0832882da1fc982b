// Device numbers (dev_t, st_rdev) split into major and minor as glibc's gnu_dev_major/minor
// do. The kernel hands user space major in bits 8..19 and minor in bits 0..7 and 20..31
// (new_encode_dev); glibc's 64-bit dev_t adds major bits 32..43 above them. `rdev >> 8` and
// `rdev & 0xff` are only right for minors below 256.

const TWO32 = 0x1_0000_0000;

export interface DeviceNumber {
  major: number;
  minor: number;
}

export function decodeDeviceNumber(rdev: number): DeviceNumber {
  // Split in 32-bit halves: JavaScript's bit operators work on 32 bits only.
  const lo = rdev % TWO32;
  const hi = Math.floor(rdev / TWO32);
  const major = (((lo >>> 8) & 0xfff) | (hi & 0xfffff000)) >>> 0;
  const minor = ((lo & 0xff) | ((lo >>> 12) & 0xfff00) | ((hi & 0xfff) << 20)) >>> 0;
  return { major, minor };
}

/** The sysfs directory of a block device number: /sys/dev/block/MAJOR:MINOR. */
export function sysfsBlockPath(rdev: number): string {
  const { major, minor } = decodeDeviceNumber(rdev);
  return `/sys/dev/block/${major}:${minor}`;
}
