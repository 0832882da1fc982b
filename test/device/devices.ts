// The kernel zoned devices of the test guest, found and checked by what sysfs says they are
// (never by name alone: the tests write to them as root).
import fs from 'node:fs';
import path from 'node:path';

export interface GuestDevices {
  /** null_blk from the kernel command line (NULLB_PARAMS). */
  nullb: string;
  /** scsi_debug as a host-managed ZBC disk (SCSI_DEBUG_PARAMS). */
  scsi: string;
}

const read = (f: string): string => fs.readFileSync(f, 'utf8').trim();

export function findGuestDevices(): GuestDevices {
  if (process.env.VUZBD_IN_GUEST !== '1') throw new Error('not inside the UML test guest (VUZBD_IN_GUEST is not 1)');
  const nullbSys = '/sys/block/nullb0';
  if (!fs.existsSync(nullbSys) || read(path.join(nullbSys, 'queue/zoned')) !== 'host-managed') {
    throw new Error('no zoned /dev/nullb0: boot the guest with the null_blk parameters of test/conformance/geometries.ts');
  }
  let scsi = '';
  for (const d of fs.readdirSync('/sys/block')) {
    const model = path.join('/sys/block', d, 'device/model');
    if (d.startsWith('sd') && fs.existsSync(model) && read(model) === 'scsi_debug' && read(path.join('/sys/block', d, 'queue/zoned')) === 'host-managed') {
      scsi = `/dev/${d}`;
    }
  }
  if (!scsi) throw new Error(`no host-managed scsi_debug disk in /sys/block (${fs.readdirSync('/sys/block').join(' ')})`);
  return { nullb: '/dev/nullb0', scsi };
}

const CONFIGFS = '/sys/kernel/config/nullb';

/**
 * A null_blk device made through configfs (its /dev name is the directory name). Attributes
 * are written in order before power-on; `zoned` is set explicitly because configfs devices
 * inherit the module parameters (zoned=1 from the kernel command line).
 */
export function makeNullb(name: string, attrs: Array<[string, string | number]>): string {
  const dir = path.join(CONFIGFS, name);
  if (!fs.existsSync(CONFIGFS)) throw new Error(`${CONFIGFS} missing: configfs is not mounted`);
  fs.mkdirSync(dir);
  for (const [k, v] of attrs) fs.writeFileSync(path.join(dir, k), String(v));
  fs.writeFileSync(path.join(dir, 'power'), '1');
  const dev = `/dev/${name}`;
  for (let i = 0; i < 100 && !fs.existsSync(dev); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  if (!fs.existsSync(dev)) throw new Error(`${dev} did not appear after powering on ${dir}`);
  return dev;
}

/** Write one configfs attribute of a configfs null_blk device (badblocks, zone_offline...). */
export function nullbAttr(name: string, attr: string, value: string | number): void {
  fs.writeFileSync(path.join(CONFIGFS, name, attr), String(value));
}

export function removeNullb(name: string): void {
  const dir = path.join(CONFIGFS, name);
  if (!fs.existsSync(dir)) return;
  fs.writeFileSync(path.join(dir, 'power'), '0');
  fs.rmdirSync(dir);
}
