import { describe, expect, it } from 'vitest';
import { hostDeviceSerial, imageSerial, MEMORY_SERIAL, rawFileSerial } from '../../src/backends/serial.js';

describe('serials', () => {
  it('an image serial is the first 7 bytes of its UUID in hex', () => {
    const uuid = Uint8Array.from({ length: 16 }, (_, i) => i * 17);
    expect(imageSerial(uuid)).toBe('vuzbd-00112233445566');
  });

  it('a raw file serial depends on path and inode, and fits GET_ID (20 bytes)', () => {
    const a = rawFileSerial('/srv/disk.raw', 12);
    expect(a).toMatch(/^vuzbd-[0-9a-f]{14}$/);
    expect(rawFileSerial('/srv/disk.raw', 12)).toBe(a);
    expect(rawFileSerial('/srv/disk.raw', 13)).not.toBe(a);
    expect(rawFileSerial('/srv/other.raw', 12)).not.toBe(a);
  });

  it('a host device serial follows the medium identity when the kernel knows one', () => {
    const f = { path: '/dev/nullb0', major: 251, minor: 0, capacitySectors: 1 << 21, identity: 'naa.5000c500a1b2c3d4' as string | null };
    const s = hostDeviceSerial(f);
    expect(s).toMatch(/^vuzbd-[0-9a-f]{14}$/);
    // Same medium under another node name: same serial.
    expect(hostDeviceSerial({ ...f, path: '/dev/sdb', minor: 16 })).toBe(s);
    // Without an identity: node, numbers and size.
    const anon = { ...f, identity: null };
    expect(hostDeviceSerial(anon)).not.toBe(s);
    expect(hostDeviceSerial({ ...anon, minor: 1 })).not.toBe(hostDeviceSerial(anon));
  });

  it('a RAM disk has the fixed memory serial', () => {
    expect(MEMORY_SERIAL).toBe('vuzbd-memory');
  });
});
